// Kernel UAPI the Swift importer cannot see on its own. Filled in by LinuxAudit work.
#ifndef CAUDITLINUX_H
#define CAUDITLINUX_H
#include <linux/netlink.h>
#include <linux/audit.h>
#include <linux/connector.h>
#include <linux/cn_proc.h>
#endif
