// One-line shims for calls the Swift importer cannot make (variadic syscall/ioctl,
// _GNU_SOURCE-only declarations). No logic lives here.
#ifdef __linux__
#define _GNU_SOURCE
#include <fcntl.h>
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
#endif
