package export

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"golang.org/x/sync/errgroup"
)

// headThreshold: on a re-export (the tag already names another manifest),
// a blob at least this big gets a HEAD before its upload, so that a layer
// the registry already holds is not sent again even by a registry that
// does not mount. On a cold push no blob gets a HEAD: the upload's POST
// offers the blob for mounting, which skips it where the registry has it.
var headThreshold int64 = 1 << 20

// manifestAccept is the Accept header of a manifest HEAD: every manifest
// type, so that a tag naming another kind of manifest still answers with
// its digest.
var manifestAccept = strings.Join([]string{
	string(types.OCIManifestSchema1), string(types.OCIImageIndex),
	string(types.DockerManifestSchema2), string(types.DockerManifestList),
	string(types.DockerManifestSchema1), string(types.DockerManifestSchema1Signed),
}, ", ")

// registryClient talks to one repository through go-containerregistry's
// transport stack, built as remote.Write builds it: the registry transport
// (TLS policy, idle timeout, Retry-After, digest recording), its retrying
// transport (c.backoff, retryStatusCodes) for requests without a body, the
// user agent, and the token or basic auth for the push scope (and pull on
// the repositories blobs are mounted from).
//
// A request with a body (a blob or manifest PUT) bypasses the retrying
// transport, which would send it again with its body already read; the
// caller retries the whole step instead (retry), as remote.Write does.
type registryClient struct {
	http    *http.Client
	base    string // scheme://host/v2/repo
	repo    name.Repository
	backoff remote.Backoff
}

func newRegistryClient(ctx context.Context, repo name.Repository, pullFrom []name.Repository, c registryConfig) (*registryClient, error) {
	auth, err := authn.Resolve(ctx, c.keychain, repo)
	if err != nil {
		return nil, fmt.Errorf("credentials for %s: %w", repo.RegistryStr(), err)
	}
	scopes := []string{repo.Scope(transport.PushScope)}
	for _, r := range pullFrom {
		if s := r.Scope(transport.PullScope); r.Name() != repo.Name() && !slices.Contains(scopes, s) {
			scopes = append(scopes, s)
		}
	}
	retrying := transport.NewRetry(c.transport,
		transport.WithRetryBackoff(c.backoff),
		transport.WithRetryPredicate(isTransient),
		transport.WithRetryStatusCodes(retryStatusCodes...))
	inner := transport.NewUserAgent(&bodyAwareTransport{retrying: retrying, once: c.transport}, UserAgent)
	rt, err := transport.NewWithContext(ctx, repo.Registry, auth, inner, scopes)
	if err != nil {
		return nil, err
	}
	return &registryClient{
		http:    &http.Client{Transport: rt},
		base:    repo.Scheme() + "://" + repo.RegistryStr() + "/v2/" + repo.RepositoryStr(),
		repo:    repo,
		backoff: c.backoff,
	}, nil
}

// bodyAwareTransport sends requests without a body through retrying, and
// the others once.
type bodyAwareTransport struct {
	retrying, once http.RoundTripper
}

func (t *bodyAwareTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Body != nil && req.Body != http.NoBody {
		return t.once.RoundTrip(req)
	}
	return t.retrying.RoundTrip(req)
}

// isTransient is remote.Write's retry predicate: a status of
// retryStatusCodes, a temporary network error, a reset, a broken pipe, a
// connection closed or cut short. Never an error reading the source.
func isTransient(err error) bool {
	if err == nil {
		return false
	}
	var src *sourceError
	if errors.As(err, &src) {
		return false // reading the image failed: sending it again won't help
	}
	var te *transport.Error
	if errors.As(err, &te) {
		return slices.Contains(retryStatusCodes, te.StatusCode)
	}
	var temp interface{ Temporary() bool }
	if errors.As(err, &temp) && temp.Temporary() {
		return true
	}
	return errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) || errors.Is(err, syscall.EPIPE) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, net.ErrClosed)
}

// retry runs f until it succeeds, fails with an error that is not
// transient, or the backoff's steps are used up.
func (rc *registryClient) retry(ctx context.Context, f func() error) error {
	delay := rc.backoff.Duration
	for step := 1; ; step++ {
		err := f()
		if err == nil || ctx.Err() != nil || step >= max(rc.backoff.Steps, 1) || !isTransient(err) {
			return err
		}
		if !sleep(ctx, &delay, rc.backoff) {
			return err
		}
	}
}

// sleep waits for *delay plus jitter and grows *delay for the next time;
// false when ctx ended first.
func sleep(ctx context.Context, delay *time.Duration, b remote.Backoff) bool {
	wait := *delay
	if b.Jitter > 0 {
		wait += time.Duration(rand.Float64() * b.Jitter * float64(*delay))
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
		return false
	}
	*delay = time.Duration(float64(*delay) * max(b.Factor, 1))
	if b.Cap > 0 && *delay > b.Cap {
		*delay = b.Cap
	}
	return true
}

// headManifest returns the digest the registry holds for tag, or "" when
// it has none (404, or 403 as some registries answer for a missing tag).
func (rc *registryClient) headManifest(ctx context.Context, tag string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodHead, rc.base+"/manifests/"+tag, nil)
	if err != nil {
		return "", err
	}
	req.Header.Set("Accept", manifestAccept)
	resp, err := rc.http.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusNotFound, http.StatusForbidden:
		return "", nil
	}
	if err := transport.CheckError(resp, http.StatusOK); err != nil {
		return "", err
	}
	return resp.Header.Get("Docker-Content-Digest"), nil
}

// putManifest PUTs raw as tag, retrying the whole request.
func (rc *registryClient) putManifest(ctx context.Context, tag, mediaType string, raw []byte) error {
	return rc.retry(ctx, func() error {
		req, err := http.NewRequestWithContext(ctx, http.MethodPut, rc.base+"/manifests/"+tag, bytes.NewReader(raw))
		if err != nil {
			return err
		}
		req.Header.Set("Content-Type", mediaType)
		resp, err := rc.http.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		return transport.CheckError(resp, http.StatusOK, http.StatusCreated, http.StatusAccepted)
	})
}

// headBlob says whether the repository holds the blob d.
func (rc *registryClient) headBlob(ctx context.Context, d v1.Hash) (bool, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodHead, rc.base+"/blobs/"+d.String(), nil)
	if err != nil {
		return false, err
	}
	resp, err := rc.http.Do(req)
	if err != nil {
		return false, err
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusNotFound {
		return false, nil
	}
	if err := transport.CheckError(resp, http.StatusOK); err != nil {
		return false, err
	}
	return true, nil
}

// blob is one blob of an image to upload.
type blob struct {
	layer v1.Layer
	d     v1.Hash
	size  int64
	from  name.Repository // offered for mounting from here
}

// imageBlobs lists the distributable layers and the config of img, each
// digest once. A blob is offered for mounting from mountFrom, or, for a
// layer read from a registry (docker:// source) on the same registry, from
// its source repository.
func imageBlobs(img v1.Image, mountFrom name.Repository) ([]blob, error) {
	layers, err := img.Layers()
	if err != nil {
		return nil, fmt.Errorf("read the layers: %w", err)
	}
	cl, err := partial.ConfigLayer(img)
	if err != nil {
		return nil, fmt.Errorf("read the config: %w", err)
	}
	var out []blob
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
		b := blob{layer: l, d: d, size: size, from: mountFrom}
		if ml, ok := l.(*remote.MountableLayer); ok && ml.Reference.Context().RegistryStr() == mountFrom.RegistryStr() {
			b.from = ml.Reference.Context()
		}
		out = append(out, b)
	}
	return out, nil
}

// blobUploader uploads the blobs of one image to one repository with the
// fewest requests the distribution spec allows: per blob, one POST that
// offers it for mounting (201: the registry has it, done) or opens an
// upload session (202), then one monolithic PUT of the whole blob. A blob
// whose monolithic upload the registry refuses goes through
// go-containerregistry's chunked upload (fallback) instead.
type blobUploader struct {
	rc       *registryClient
	fallback func(ctx context.Context, l v1.Layer) error
	counter  *progressCounter // never nil
}

// upload uploads blobs, jobs at a time. With check, blobs of headThreshold
// and more get a HEAD first.
func (u *blobUploader) upload(ctx context.Context, blobs []blob, jobs int, check bool) error {
	for _, b := range blobs {
		u.counter.total.Add(b.size)
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(max(jobs, 1))
	for _, b := range blobs {
		g.Go(func() error {
			if err := u.uploadOne(gctx, b, check); err != nil {
				return fmt.Errorf("blob %s: %w", b.d, err)
			}
			return nil
		})
	}
	return g.Wait()
}

func (u *blobUploader) uploadOne(ctx context.Context, b blob, check bool) error {
	if check && b.size >= headThreshold {
		exists, err := u.rc.headBlob(ctx, b.d)
		if err != nil {
			return err
		}
		if exists {
			u.progress(b.size)
			return nil
		}
	}
	err := u.rc.retry(ctx, func() error { return u.monolithic(ctx, b) })
	var refused *refusedError
	if errors.As(err, &refused) {
		if ferr := u.fallback(ctx, b.layer); ferr != nil {
			return fmt.Errorf("monolithic upload refused (%v), chunked upload: %w", refused.err, ferr)
		}
		u.progress(b.size)
		return nil
	}
	return err
}

// monolithic is one POST, then (unless the blob was mounted) one PUT that
// sends the whole blob and closes the session.
func (u *blobUploader) monolithic(ctx context.Context, b blob) error {
	q := url.Values{"mount": {b.d.String()}, "from": {b.from.RepositoryStr()}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u.rc.base+"/blobs/uploads/?"+q.Encode(), nil)
	if err != nil {
		return err
	}
	resp, err := u.rc.http.Do(req)
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
		u.progress(b.size)
		return nil
	}
	loc := resp.Header.Get("Location")
	put, err := req.URL.Parse(loc)
	if err != nil || loc == "" {
		return &refusedError{fmt.Errorf("POST %s: no usable Location", req.URL.Path)}
	}
	pq := put.Query()
	pq.Set("digest", b.d.String())
	put.RawQuery = pq.Encode()

	rc, err := b.layer.Compressed()
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
	preq.ContentLength = b.size
	preq.Header.Set("Content-Type", "application/octet-stream")
	presp, err := u.rc.http.Do(preq)
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
func (u *blobUploader) progress(n int64) { u.counter.done.Add(n) }

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

// sourceError is a failure to read the image being pushed (a missing or
// corrupt blob): never retried.
type sourceError struct{ err error }

func (e *sourceError) Error() string { return "read the blob: " + e.err.Error() }
func (e *sourceError) Unwrap() error { return e.err }

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
