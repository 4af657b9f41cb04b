//go:build !unix

package termination

// openNoFollow: not available here; the in-place fallback is for
// Kubernetes' bind-mounted termination message, on Linux.
const openNoFollow = 0
