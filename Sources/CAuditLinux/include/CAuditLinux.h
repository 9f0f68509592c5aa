// Kernel UAPI the Swift importer cannot see on its own: headers, constants the
// Debian 12 headers (linux-libc-dev 6.1) lack, and one-line shims for macros,
// variadic calls (ioctl, syscall) and structs with flexible array members.
#ifndef CAUDITLINUX_H
#define CAUDITLINUX_H
#ifdef __linux__

#include <stdint.h>
#include <sys/types.h>
#include <sys/socket.h>
#include <sys/prctl.h>
#include <linux/netlink.h>
#include <linux/audit.h>
#include <linux/connector.h>
#include <linux/cn_proc.h>

// ---- netlink ----------------------------------------------------------------
static inline uint32_t caudit_nlmsg_align(uint32_t len) { return NLMSG_ALIGN(len); }

// ---- audit ------------------------------------------------------------------
// struct audit_rule_data without its flexible buf[]; the kernel rejects shorter payloads.
static inline uint32_t caudit_rule_data_size(void) { return (uint32_t)sizeof(struct audit_rule_data); }
_Static_assert(sizeof(struct audit_rule_data) == 1040, "audit_rule_data layout");
_Static_assert(sizeof(struct audit_status) == 44, "audit_status layout");

// ---- proc connector -----------------------------------------------------------
// linux/cn_proc.h >= 6.6 (absent from 6.1 headers): an event filter sent with the
// LISTEN op, and the extra event bit for non-zero exits.
struct caudit_proc_input {
    uint32_t mcast_op;    // enum proc_cn_mcast_op
    uint32_t event_type;  // PROC_EVENT_* mask, matched by the kernel
};
#ifndef PROC_EVENT_NONZERO_EXIT
#define PROC_EVENT_NONZERO_EXIT 0x20000000
#endif
static inline uint32_t caudit_cn_msg_size(void) { return (uint32_t)sizeof(struct cn_msg); }

// prctl is variadic, so Swift cannot call it: one shim per option used.
static inline int caudit_set_child_subreaper(int on) { return prctl(PR_SET_CHILD_SUBREAPER, (unsigned long)on, 0UL, 0UL, 0UL); }

// ---- peer credentials / pidfd -------------------------------------------------
// asm-generic/socket.h (Linux 6.5); equal to 77 on x86_64 and aarch64.
#ifndef SO_PEERPIDFD
#define SO_PEERPIDFD 77
#endif
#define CAUDIT_SO_PEERPIDFD SO_PEERPIDFD
#define CAUDIT_SO_PEERCRED SO_PEERCRED
#define CAUDIT_SO_RCVBUFFORCE SO_RCVBUFFORCE
// pidfd_open flags (linux/pidfd.h): PIDFD_NONBLOCK is O_NONBLOCK.
#define CAUDIT_PIDFD_NONBLOCK 04000

int caudit_pidfd_open(pid_t pid, unsigned int flags);
int caudit_pidfd_send_signal(int pidfd, int sig);

// ---- nsfs ---------------------------------------------------------------------
// linux/nsfs.h (Linux 6.11): NS_GET_ID = _IOR(0xb7, 13, __u64); 64-bit, never reused.
#define CAUDIT_NS_GET_ID 0x8008b70dUL
int caudit_ioctl_u64(int fd, unsigned long request, uint64_t *out);

// struct file_handle has a flexible array: Swift passes raw bytes laid out as
// { u32 handle_bytes; i32 handle_type; u8 f_handle[handle_bytes] }.
int caudit_name_to_handle_at(int dirfd, const char *path, void *handle, int *mount_id, int flags);
int caudit_open_by_handle_at(int mount_fd, void *handle, int flags);
#define CAUDIT_AT_EMPTY_PATH 0x1000

// ---- unix sockets -------------------------------------------------------------
// accept4(2) is declared only under _GNU_SOURCE.
int caudit_accept4(int fd, int flags);
// One message with at most one descriptor attached (fd < 0: none).
ssize_t caudit_send_with_fd(int sock, const void *buf, size_t len, int fd, int flags);
// One message and the descriptors attached to it (at most CAUDIT_MAX_PASSED_FDS are
// taken; the caller closes them); msg_flags gets MSG_TRUNC/MSG_CTRUNC.
#define CAUDIT_MAX_PASSED_FDS 4
ssize_t caudit_receive_with_fds(int sock, void *buf, size_t len, int flags, int *fds, int max_fds, int *nfds, int *msg_flags);

#endif // __linux__
#endif // CAUDITLINUX_H
