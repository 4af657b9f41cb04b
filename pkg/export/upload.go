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
const headThreshold = 1 << 20

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
// (TLS policy, idle timeout, Retry-After, digest recording), the user
// agent, and the token or basic auth for the push scope (and pull on the
// repositories blobs are mounted from).
//
// There is one retry layer: each operation (the ping and token exchange
// that set the client up, a HEAD, a manifest PUT, a blob upload's POST and
// PUT together) runs under retryTransient, and nothing below it retries.
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
	inner := transport.NewUserAgent(c.transport, UserAgent)
	var rt http.RoundTripper
	err = retryTransient(ctx, c.backoff, func(ctx context.Context) error {
		var err error
		rt, err = transport.NewWithContext(ctx, repo.Registry, auth, inner, scopes) // pings the registry
		return err
	})
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

// isTransient is the retry predicate, of export-step's own retries and
// go-containerregistry's alike: a status of retryStatusCodes, a temporary
// network error, a reset, a broken pipe, a connection closed or cut short;
// and MANIFEST_BLOB_UNKNOWN on a manifest PUT (see below). Never an error
// reading the source, never another 4xx.
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
		return slices.Contains(retryStatusCodes, te.StatusCode) || manifestBlobUnknown(te)
	}
	var temp interface{ Temporary() bool }
	if errors.As(err, &temp) && temp.Temporary() {
		return true
	}
	return errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) || errors.Is(err, syscall.EPIPE) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, net.ErrClosed)
}

// manifestBlobUnknown reports a manifest PUT answered 400
// MANIFEST_BLOB_UNKNOWN. A manifest is PUT only after every blob it
// references was uploaded or found, so that answer is the registry's
// storage catching up, not a bad manifest: Distribution's filesystem
// storage rewrites a repository's blob link in place (truncate, then
// write) when another client finishes uploading the same blob, and a
// manifest verified in that window is refused (seen with 8 parallel exports
// sharing layers, test/faults TestParallelExports). It is retried like a
// 503, within the same tries.
func manifestBlobUnknown(te *transport.Error) bool {
	if te.StatusCode != http.StatusBadRequest || te.Request == nil || te.Request.Method != http.MethodPut ||
		!strings.Contains(te.Request.URL.Path, "/manifests/") {
		return false
	}
	for _, d := range te.Errors {
		if d.Code == transport.ManifestBlobUnknownErrorCode {
			return true
		}
	}
	return false
}

// errBudget is wrapped when a retry would come after the export's time
// budget (Options.Timeout) runs out: the export gives up at once.
var errBudget = errors.New("the next try would come after the time budget runs out")

// retryTransient runs f until it succeeds, fails with an error that is not
// transient, or b's steps are used up; between tries it waits b's backoff
// (with jitter) or, when the registry said Retry-After (retryAfterTransport
// leaves it in the try's context), that long if longer. A wait that would
// end past ctx's deadline is not begun: the last error is returned,
// wrapping errBudget. This is the only retry loop of export-step's own
// requests.
func retryTransient(ctx context.Context, b remote.Backoff, f func(context.Context) error) error {
	delay := b.Duration
	for try := 1; ; try++ {
		hint := &retryHint{}
		err := f(context.WithValue(ctx, retryHintKey{}, hint))
		if err == nil || ctx.Err() != nil || try >= max(b.Steps, 1) || !isTransient(err) {
			return err
		}
		wait := delay
		if b.Jitter > 0 {
			wait += time.Duration(rand.Float64() * b.Jitter * float64(delay))
		}
		wait = max(wait, hint.get())
		if deadline, ok := ctx.Deadline(); ok && time.Now().Add(wait).After(deadline) {
			return fmt.Errorf("giving up at try %d: %w (in %s): %w", try, errBudget, wait.Round(time.Millisecond), err)
		}
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return err
		}
		delay = time.Duration(float64(delay) * max(b.Factor, 1))
		if b.Cap > 0 && delay > b.Cap {
			delay = b.Cap
		}
	}
}

// retry runs f under retryTransient with the client's backoff.
func (rc *registryClient) retry(ctx context.Context, f func(context.Context) error) error {
	return retryTransient(ctx, rc.backoff, f)
}

// headManifest returns the digest the registry holds for tag, or "" when
// it has none (404, or 403 as some registries answer for a missing tag).
func (rc *registryClient) headManifest(ctx context.Context, tag string) (digest string, err error) {
	err = rc.retry(ctx, func(ctx context.Context) error {
		resp, err := rc.do(ctx, http.MethodHead, rc.base+"/manifests/"+tag, nil, "Accept", manifestAccept)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		switch resp.StatusCode {
		case http.StatusNotFound, http.StatusForbidden:
			digest = ""
			return nil
		}
		digest = resp.Header.Get("Docker-Content-Digest")
		return transport.CheckError(resp, http.StatusOK)
	})
	return digest, err
}

// putManifest PUTs raw as tag, retrying the whole request.
func (rc *registryClient) putManifest(ctx context.Context, tag, mediaType string, raw []byte) error {
	return rc.retry(ctx, func(ctx context.Context) error {
		resp, err := rc.do(ctx, http.MethodPut, rc.base+"/manifests/"+tag, bytes.NewReader(raw), "Content-Type", mediaType)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		return transport.CheckError(resp, http.StatusOK, http.StatusCreated, http.StatusAccepted)
	})
}

// headBlob says whether the repository holds the blob d.
func (rc *registryClient) headBlob(ctx context.Context, d v1.Hash) (exists bool, err error) {
	err = rc.retry(ctx, func(ctx context.Context) error {
		resp, err := rc.do(ctx, http.MethodHead, rc.base+"/blobs/"+d.String(), nil)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		exists = resp.StatusCode != http.StatusNotFound
		if !exists {
			return nil
		}
		return transport.CheckError(resp, http.StatusOK)
	})
	return exists, err
}

// do sends one request with the given header (name, value pairs).
func (rc *registryClient) do(ctx context.Context, method, url string, body io.Reader, header ...string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, url, body)
	if err != nil {
		return nil, err
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	return rc.http.Do(req)
}

// blob is one blob of an image to upload.
type blob struct {
	layer v1.Layer
	d     v1.Hash // zero: not known yet (the layer is compressed when asked)
	size  int64
	from  name.Repository // offered for mounting from here
}

// resolve learns the digest and size of a blob streamed from a
// layerStreamer: this waits until its layer is compressed.
func (b *blob) resolve() error {
	if b.d != (v1.Hash{}) {
		return nil
	}
	d, err := b.layer.Digest()
	if err != nil {
		return err
	}
	size, err := b.layer.Size()
	if err != nil {
		return err
	}
	b.d, b.size = d, size
	return nil
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
			if b.d == (v1.Hash{}) {
				if err := b.resolve(); err != nil {
					return err // names the layer and its source
				}
				u.counter.total.Add(b.size)
			}
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
	err := u.rc.retry(ctx, func(ctx context.Context) error { return u.monolithic(ctx, b) })
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
