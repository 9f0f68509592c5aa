// One-line shims for calls the Swift importer cannot make (variadic syscall/ioctl,
// _GNU_SOURCE-only declarations). No logic lives here.
#ifdef __linux__
#define _GNU_SOURCE
#include <fcntl.h>
#include <string.h>
#include <sys/uio.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <unistd.h>
#include "CAuditLinux.h"

int caudit_pidfd_open(pid_t pid, unsigned int flags) { return (int)syscall(SYS_pidfd_open, pid, flags); }
int caudit_pidfd_send_signal(int pidfd, int sig) { return (int)syscall(SYS_pidfd_send_signal, pidfd, sig, NULL, 0); }
int caudit_ioctl_u64(int fd, unsigned long request, uint64_t *out) { return ioctl(fd, request, out); }
int caudit_name_to_handle_at(int dirfd, const char *path, void *handle, int *mount_id, int flags) {
    return name_to_handle_at(dirfd, path, (struct file_handle *)handle, mount_id, flags);
}
int caudit_open_by_handle_at(int mount_fd, void *handle, int flags) {
    return open_by_handle_at(mount_fd, (struct file_handle *)handle, flags);
}
int caudit_accept4(int fd, int flags) { return accept4(fd, NULL, NULL, flags); }

// sendmsg/recvmsg with SCM_RIGHTS: the CMSG_* macros exist only in C.
ssize_t caudit_send_with_fd(int sock, const void *buf, size_t len, int fd, int flags) {
    struct iovec iov = { (void *)buf, len };
    union { char bytes[CMSG_SPACE(sizeof(int))]; struct cmsghdr align; } control;
    struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1 };
    if (fd >= 0) {
        memset(&control, 0, sizeof control);
        msg.msg_control = control.bytes;
        msg.msg_controllen = sizeof control.bytes;
        struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int));
        memcpy(CMSG_DATA(c), &fd, sizeof(int));
    }
    return sendmsg(sock, &msg, flags);
}

ssize_t caudit_receive_with_fds(int sock, void *buf, size_t len, int flags, int *fds, int max_fds, int *nfds, int *msg_flags) {
    struct iovec iov = { buf, len };
    union { char bytes[CMSG_SPACE(sizeof(int) * CAUDIT_MAX_PASSED_FDS)]; struct cmsghdr align; } control;
    struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = control.bytes, .msg_controllen = sizeof control.bytes };
    *nfds = 0;
    ssize_t n = recvmsg(sock, &msg, flags | MSG_CMSG_CLOEXEC);
    if (n < 0) return n;
    *msg_flags = msg.msg_flags;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
        size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        for (size_t i = 0; i < count && *nfds < max_fds; i++) memcpy(&fds[(*nfds)++], CMSG_DATA(c) + i * sizeof(int), sizeof(int));
    }
    return n;
}
#endif
