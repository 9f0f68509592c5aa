#include "CAuditLinux.h"
