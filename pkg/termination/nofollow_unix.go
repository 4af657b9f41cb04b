//go:build unix

package termination

import "syscall"

// openNoFollow makes an open fail on a symlink (ELOOP).
const openNoFollow = syscall.O_NOFOLLOW
