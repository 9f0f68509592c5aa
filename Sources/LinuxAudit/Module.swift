// LinuxAudit module
