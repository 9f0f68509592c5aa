// A malloc counter for benchmarks: the shim replaces malloc and its kin in the
// benchmark executable, counts the calls while counting is on, and forwards to
// glibc's own implementation (__libc_malloc and friends).
#pragma once
#include <stdint.h>

void cmc_set_counting(int on);
uint64_t cmc_allocations(void);
