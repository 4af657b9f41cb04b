//go:build !unix

package results

// openNoFollow: not available here; the in-place fallback is for
// Kubernetes' bind-mounted termination message, on Linux.
const openNoFollow = 0
