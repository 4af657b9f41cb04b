package registry

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"slices"
	"sync/atomic"
	"syscall"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"golang.org/x/sync/errgroup"
)

// HeadThreshold: on a re-export (the tag already names another manifest),
// a blob at least this big gets a HEAD before its upload, so that a layer
// the registry already holds is not sent again even by a registry that
// does not mount. On a cold push no blob gets a HEAD: the upload's POST
// offers the blob for mounting, which skips it where the registry has it.
const HeadThreshold = 1 << 20

// Blob is one blob of an image to upload.
type Blob struct {
	Layer  v1.Layer
	Digest v1.Hash // zero: not known yet (the layer is compressed when asked)
	Size   int64
	From   name.Repository // offered for mounting from here
}

// Resolve learns the digest and size of a blob streamed from a
// layerStreamer: this waits until its layer is compressed.
func (b *Blob) Resolve() error {
	if b.Digest != (v1.Hash{}) {
		return nil
	}
	d, err := b.Layer.Digest()
	if err != nil {
		return err
	}
	size, err := b.Layer.Size()
	if err != nil {
		return err
	}
	b.Digest, b.Size = d, size
	return nil
}

// ImageBlobs lists the distributable layers and the config of img, each
// digest once. A blob is offered for mounting from mountFrom, or, for a
// layer read from a registry (docker:// source) on the same registry, from
// its source repository.
func ImageBlobs(img v1.Image, mountFrom name.Repository) ([]Blob, error) {
	layers, err := img.Layers()
	if err != nil {
		return nil, fmt.Errorf("read the layers: %w", err)
	}
	cl, err := partial.ConfigLayer(img)
	if err != nil {
		return nil, fmt.Errorf("read the config: %w", err)
	}
	var out []Blob
	seen := map[v1.Hash]bool{}
	for _, l := range append(slices.Clip(layers), cl) {
		mt, err := l.MediaType()
		if err != nil {
			return nil, err
		}
		if !mt.IsDistributable() {
			continue
		}
		d, err := l.Digest()
		if err != nil {
			return nil, err
		}
		size, err := l.Size()
		if err != nil {
			return nil, err
		}
		if seen[d] {
			continue
		}
		seen[d] = true
		b := Blob{Layer: l, Digest: d, Size: size, From: mountFrom}
		if ml, ok := l.(*remote.MountableLayer); ok && ml.Reference.Context().RegistryStr() == mountFrom.RegistryStr() {
			b.From = ml.Reference.Context()
		}
		out = append(out, b)
	}
	return out, nil
}

// Uploader uploads the blobs of one image to one repository with the
// fewest requests the distribution spec allows: per blob, one POST that
// offers it for mounting (201: the registry has it, done) or opens an
// upload session (202), then one monolithic PUT of the whole blob. A blob
// whose monolithic upload the registry refuses goes through
// go-containerregistry's chunked upload (fallback) instead.
type Uploader struct {
	Client *Client
	// Fallback uploads a layer whose monolithic upload the registry
	// refused (go-containerregistry's chunked upload).
	Fallback func(ctx context.Context, l v1.Layer) error
	// Counter counts the bytes to send and sent; never nil.
	Counter *Counter
}

// Upload uploads blobs, jobs at a time. With check, blobs of HeadThreshold
// and more get a HEAD first.
func (u *Uploader) Upload(ctx context.Context, blobs []Blob, jobs int, check bool) error {
	for _, b := range blobs {
		u.Counter.Total.Add(b.Size)
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(max(jobs, 1))
	for _, b := range blobs {
		g.Go(func() error {
			if b.Digest == (v1.Hash{}) {
				if err := b.Resolve(); err != nil {
					return err // names the layer and its source
				}
				u.Counter.Total.Add(b.Size)
			}
			if err := u.uploadOne(gctx, b, check); err != nil {
				return fmt.Errorf("blob %s: %w", b.Digest, err)
			}
			return nil
		})
	}
	return g.Wait()
}

func (u *Uploader) uploadOne(ctx context.Context, b Blob, check bool) error {
	if check && b.Size >= HeadThreshold {
		exists, err := u.Client.HeadBlob(ctx, b.Digest)
		if err != nil {
			return err
		}
		if exists {
			u.progress(b.Size)
			return nil
		}
	}
	err := u.Client.Retry(ctx, func(ctx context.Context) error { return u.monolithic(ctx, b) })
	var refused *refusedError
	if errors.As(err, &refused) {
		if ferr := u.Fallback(ctx, b.Layer); ferr != nil {
			return fmt.Errorf("monolithic upload refused (%v), chunked upload: %w", refused.err, ferr)
		}
		u.progress(b.Size)
		return nil
	}
	return err
}

// monolithic is one POST, then (unless the blob was mounted) one PUT that
// sends the whole blob and closes the session.
func (u *Uploader) monolithic(ctx context.Context, b Blob) error {
	q := url.Values{"mount": {b.Digest.String()}, "from": {b.From.RepositoryStr()}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u.Client.base+"/blobs/uploads/?"+q.Encode(), nil)
	if err != nil {
		return err
	}
	resp, err := u.Client.http.Do(req)
	if err != nil {
		return err
	}
	err = transport.CheckError(resp, http.StatusCreated, http.StatusAccepted)
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
	resp.Body.Close()
	if err != nil {
		return refusable(err)
	}
	if resp.StatusCode == http.StatusCreated { // mounted: the registry has it
		u.progress(b.Size)
		return nil
	}
	loc := resp.Header.Get("Location")
	put, err := req.URL.Parse(loc)
	if err != nil || loc == "" {
		return &refusedError{fmt.Errorf("POST %s: no usable Location", req.URL.Path)}
	}
	pq := put.Query()
	pq.Set("digest", b.Digest.String())
	put.RawQuery = pq.Encode()

	rc, err := b.Layer.Compressed()
	if err != nil {
		return &sourceError{err}
	}
	defer rc.Close()
	// The body may be read after Do returned (net/http's writer goroutine):
	// what it counts is atomic.
	var sent atomic.Int64
	var body io.Reader = &countingReader{r: rc, add: func(n int64) { sent.Add(n); u.progress(n) }}
	if f, ok := rc.(*os.File); ok {
		body = &fileBody{countingReader: body.(*countingReader), f: f}
	}
	preq, err := http.NewRequestWithContext(ctx, http.MethodPut, put.String(), body)
	if err != nil {
		return err
	}
	preq.ContentLength = b.Size
	preq.Header.Set("Content-Type", "application/octet-stream")
	presp, err := u.Client.http.Do(preq)
	if err != nil {
		u.progress(-sent.Load())
		return err
	}
	defer presp.Body.Close()
	if err := transport.CheckError(presp, http.StatusCreated); err != nil {
		u.progress(-sent.Load())
		return refusable(err)
	}
	// The bytes were counted as the transport read them; the registry
	// has them all now: say so even if the count did not move.
	u.progress(0)
	return nil
}

// progress counts n bytes sent (negative: taken back after a failed try).
func (u *Uploader) progress(n int64) { u.Counter.Done.Add(n) }

// refusedStatusCodes answer a monolithic upload that the registry does not
// take (method not allowed or not implemented, a body too large for one
// request, a range it wants chunked): the chunked upload may work. Anything
// else (400 digest invalid, 401, 403, 5xx) is not a refusal.
var refusedStatusCodes = []int{
	http.StatusMethodNotAllowed,
	http.StatusRequestEntityTooLarge,
	http.StatusRequestedRangeNotSatisfiable,
	http.StatusNotImplemented,
}

// refusedError is a registry's "not this way": use the chunked upload.
type refusedError struct{ err error }

func (e *refusedError) Error() string { return e.err.Error() }
func (e *refusedError) Unwrap() error { return e.err }

func refusable(err error) error {
	var te *transport.Error
	if errors.As(err, &te) && slices.Contains(refusedStatusCodes, te.StatusCode) {
		return &refusedError{err}
	}
	return err
}

// countingReader counts the bytes read from r, and marks its read errors
// as the source's.
type countingReader struct {
	r   io.Reader
	add func(int64)
}

func (c *countingReader) Read(b []byte) (int, error) {
	n, err := c.r.Read(b)
	if n > 0 {
		c.add(int64(n))
	}
	if err != nil && err != io.EOF {
		err = &sourceError{err}
	}
	return n, err
}

// fileBody is the body of a blob read from a file (an OCI layout): it is a
// syscall.Conn, so that the connection can hand the file to the kernel
// (sendfile, idleConn.ReadFrom) instead of copying it through user space,
// and it counts what the kernel sent from the file's offset after each
// such copy. Read, for what is copied the ordinary way, counts as
// countingReader does.
type fileBody struct {
	*countingReader
	f    *os.File
	seen int64 // file offset counted so far
}

func (b *fileBody) Read(p []byte) (int, error) {
	n, err := b.countingReader.Read(p)
	b.seen += int64(n)
	return n, err
}

func (b *fileBody) SyscallConn() (syscall.RawConn, error) {
	rc, err := b.f.SyscallConn()
	if err != nil {
		return nil, err
	}
	return &countingRawConn{RawConn: rc, b: b}, nil
}

type countingRawConn struct {
	syscall.RawConn
	b *fileBody
}

// Read runs f (the kernel's copy) and counts how far the file's offset
// moved.
func (c *countingRawConn) Read(f func(fd uintptr) bool) error {
	err := c.RawConn.Read(f)
	if pos, serr := c.b.f.Seek(0, io.SeekCurrent); serr == nil && pos > c.b.seen {
		c.b.add(pos - c.b.seen)
		c.b.seen = pos
	}
	return err
}
