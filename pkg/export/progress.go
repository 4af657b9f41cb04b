package export

import (
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/exportreport/exportreport/pkg/export/internal/registry"
)

// defaultProgressInterval is both the delay before the first progress line
// (short pushes print none) and the least time between two lines.
const defaultProgressInterval = time.Second

// printProgress prints, every interval (and only once the push has run for
// an interval),
//
//	pushing 127.0.0.1:5000/app: 12.3 MiB / 240.0 MiB (4.5 MiB/s)
//
// and, if it printed anything, a last line with the total and the time
// taken once stop is called. stop waits for that line; it may be called
// more than once.
func printProgress(w io.Writer, label string, c *registry.Counter, interval time.Duration) (stop func()) {
	if interval <= 0 {
		interval = defaultProgressInterval
	}
	quit, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		start := time.Now()
		tick := time.NewTicker(interval)
		defer tick.Stop()
		printed := false
		for {
			select {
			case now := <-tick.C:
				printed = true
				n := c.Done.Load()
				fmt.Fprintf(w, "pushing %s: %s / %s (%s/s)\n", label,
					formatBytes(n), formatBytes(c.Total.Load()), formatBytes(rate(n, now.Sub(start))))
			case <-quit:
				if printed {
					took, n := time.Since(start), c.Done.Load()
					fmt.Fprintf(w, "pushed %s: %s in %s (%s/s)\n", label, formatBytes(n),
						took.Round(100*time.Millisecond), formatBytes(rate(n, took)))
				}
				return
			}
		}
	}()
	var once sync.Once
	return func() {
		once.Do(func() { close(quit) })
		<-done
	}
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
