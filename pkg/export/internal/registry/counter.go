package registry

import (
	"io"
	"sync/atomic"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// Counter is the state of one push's progress: the bytes to send (Total)
// and those sent so far (Done). Anything may add to it from any goroutine
// at any time, also a request body that net/http reads after the request
// returned: the adds are atomic and nothing is ever closed, so a late one
// is harmless by construction (no send on a channel another goroutine
// closes).
type Counter struct{ Total, Done atomic.Int64 }

// CountedLayer is l, whose compressed blob counts the bytes read from it
// into c.Done (for a push go-containerregistry makes, an index's); a
// failure to read it is the source's, never retried (IsTransient).
func CountedLayer(l v1.Layer, c *Counter) v1.Layer {
	return &countedLayer{Layer: l, counter: c}
}

type countedLayer struct {
	v1.Layer
	counter *Counter
}

func (l *countedLayer) Compressed() (io.ReadCloser, error) {
	rc, err := l.Layer.Compressed()
	if err != nil {
		return nil, err
	}
	return &countedReadCloser{countingReader: countingReader{r: rc, add: func(n int64) { l.counter.Done.Add(n) }}, Closer: rc}, nil
}

type countedReadCloser struct {
	countingReader
	io.Closer
}
