//go:build unix

package results

import "syscall"

// openNoFollow makes an open fail on a symlink (ELOOP).
const openNoFollow = syscall.O_NOFOLLOW
