package export

import (
	"fmt"
	"io"
	"sync"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// defaultProgressInterval is both the delay before the first progress line
// (short pushes print none) and the least time between two lines.
const defaultProgressInterval = time.Second

// printProgress consumes updates until the channel is closed and prints, at
// most once per interval and only once the push has run for an interval,
//
//	pushing 127.0.0.1:5000/app: 12.3 MiB / 240.0 MiB (4.5 MiB/s)
//
// and, if it printed anything, a last line with the total and the time taken.
// The returned channel is closed when the updates are drained.
func printProgress(w io.Writer, label string, updates <-chan v1.Update, interval time.Duration) <-chan struct{} {
	if interval <= 0 {
		interval = defaultProgressInterval
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		start := time.Now()
		var last time.Time
		var latest v1.Update
		for u := range updates {
			if u.Error != nil {
				continue
			}
			latest = u
			now := time.Now()
			if now.Sub(start) < interval || (!last.IsZero() && now.Sub(last) < interval) {
				continue
			}
			last = now
			fmt.Fprintf(w, "pushing %s: %s / %s (%s/s)\n", label,
				formatBytes(u.Complete), formatBytes(u.Total), formatBytes(rate(u.Complete, now.Sub(start))))
		}
		if !last.IsZero() {
			took := time.Since(start)
			fmt.Fprintf(w, "pushed %s: %s in %s (%s/s)\n", label, formatBytes(latest.Complete),
				took.Round(100*time.Millisecond), formatBytes(rate(latest.Complete, took)))
		}
	}()
	return done
}

func rate(n int64, d time.Duration) int64 {
	if d <= 0 {
		return 0
	}
	return int64(float64(n) / d.Seconds())
}

// formatBytes prints n in binary units with one decimal: 512 B, 1.5 KiB, 12.3 MiB.
func formatBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit && exp < 4; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTP"[exp])
}

// syncWriter serialises writes from concurrent pushes and the logger, so
// lines never interleave.
type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *syncWriter) Write(b []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(b)
}
