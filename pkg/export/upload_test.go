package export

import (
	"context"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"gotest.tools/v3/assert"

	"github.com/exportreport/exportreport/test/distribution"
)

// refuseMonolithic answers a blob PUT that carries the blob (a monolithic
// upload) with 405, as a registry that only takes chunked uploads may.
func refuseMonolithic(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPut && strings.Contains(r.URL.Path, "/blobs/uploads/") && r.ContentLength > 0 {
			http.Error(w, `{"errors":[{"code":"UNSUPPORTED"}]}`, http.StatusMethodNotAllowed)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// failFirstBlobPut answers the first blob PUT with 503.
func failFirstBlobPut() func(http.Handler) http.Handler {
	var failed atomic.Bool
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method == http.MethodPut && strings.Contains(r.URL.Path, "/blobs/uploads/") && failed.CompareAndSwap(false, true) {
				http.Error(w, "try again", http.StatusServiceUnavailable)
				return
			}
			next.ServeHTTP(w, r)
		})
	}
}

func TestPushImageDirectRequests(t *testing.T) {
	for _, tc := range []struct {
		name       string
		middleware func(http.Handler) http.Handler
		// blob requests on a cold push of 3 layers + config
		heads, posts, patches, puts int
	}{
		// The floor: POST + one monolithic PUT per blob, no HEAD, no PATCH.
		{name: "monolithic", posts: 4, puts: 4},
		// Refused: each blob falls back to go-containerregistry's chunked
		// upload (HEAD, POST, PATCH, PUT) after its refused monolithic PUT.
		{name: "chunked fallback", middleware: refuseMonolithic, heads: 4, posts: 8, patches: 4, puts: 8},
		// A 503 is retried: the whole two-request upload once more.
		{name: "transient failure retried", middleware: failFirstBlobPut(), posts: 5, puts: 5},
	} {
		t.Run(tc.name, func(t *testing.T) {
			reg := newTestRegistry(t, tc.middleware)
			img := seededImage(t, 40, 2048, 3)
			rep, err := Run(context.Background(), testOptions(t, img, reg.ref("app:1")))
			assert.NilError(t, err)
			assert.Equal(t, rep.Image.Digest, digestOf(t, img))

			assert.Equal(t, reg.count(http.MethodHead, "/v2/app/blobs/"), tc.heads, "blob HEADs")
			assert.Equal(t, reg.count(http.MethodPost, "/v2/app/blobs/uploads/"), tc.posts)
			assert.Equal(t, reg.count(http.MethodPatch, "/v2/app/blobs/uploads/"), tc.patches)
			assert.Equal(t, reg.count(http.MethodPut, "/v2/app/blobs/uploads/"), tc.puts)
			// One HEAD (is it there already?), one PUT; the PUT's digest
			// header is the verification.
			assert.DeepEqual(t, reg.on("/v2/app/manifests/1"), []string{"HEAD", "PUT"})
			assert.Equal(t, remoteDigest(t, reg.ref("app:1")), digestOf(t, img))
		})
	}
}

func TestPushImageDirectAuthFailureIsNotRetried(t *testing.T) {
	forbid := func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method == http.MethodPost {
				http.Error(w, "denied", http.StatusForbidden)
				return
			}
			next.ServeHTTP(w, r)
		})
	}
	reg := newTestRegistry(t, forbid)
	img := seededImage(t, 41, 2048, 1)
	_, err := Run(context.Background(), testOptions(t, img, reg.ref("app:1")))
	assert.ErrorContains(t, err, "403")
	// At most one POST per blob (the first 403 may cancel the other's):
	// no retry, no chunked fallback.
	posts := reg.count(http.MethodPost, "/v2/app/blobs/uploads/")
	assert.Assert(t, posts >= 1 && posts <= 2, "%d POSTs", posts)
	assert.Equal(t, reg.count(http.MethodPatch, "/v2/app/blobs/uploads/"), 0)
}

// On the real Distribution registry: a cold push costs, per blob, a POST
// (offering it for mounting) and one monolithic PUT, with no blob HEAD; a
// new image sharing layers with the tag's current one mounts those layers
// from the repository itself (POST answered 201) and uploads only what is
// new; an unchanged re-export costs one manifest HEAD per tag and nothing
// else.
func TestPushRequestsOnDistribution(t *testing.T) {
	reg := distribution.Start(t)
	proxy := newRecordingProxy(t, reg.URL())
	img := seededImage(t, 42, 32<<10, 3)
	tags := []string{proxy.host + "/req/app:1", proxy.host + "/req/app:2"}
	relabeled, err := mutate.Config(img, v1.Config{Labels: map[string]string{"v": "2"}})
	assert.NilError(t, err)

	type counts struct{ BlobHeads, Posts, Mounted, BlobPuts, Patches int }
	for _, tc := range []struct {
		name      string
		img       v1.Image
		want      counts
		manifests map[string][]string
	}{
		{name: "cold push", img: img, want: counts{Posts: 4, BlobPuts: 4},
			manifests: map[string][]string{"1": {"HEAD", "PUT"}, "2": {"PUT"}}},
		{name: "unchanged re-export", img: img, want: counts{},
			manifests: map[string][]string{"1": {"HEAD"}, "2": {"HEAD"}}},
		{name: "new config, same layers", img: relabeled, want: counts{Posts: 4, Mounted: 3, BlobPuts: 1},
			manifests: map[string][]string{"1": {"HEAD", "PUT"}, "2": {"PUT"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			start := len(proxy.requests())
			rep, err := Run(context.Background(), testOptions(t, tc.img, tags...))
			assert.NilError(t, err)
			assert.Equal(t, rep.Image.Digest, digestOf(t, tc.img))

			var got counts
			manifests := map[string][]string{}
			for _, q := range proxy.requests()[start:] {
				switch {
				case q.Method == http.MethodHead && strings.HasPrefix(q.Path, "/v2/req/app/blobs/"):
					got.BlobHeads++
				case q.Method == http.MethodPost && q.Path == "/v2/req/app/blobs/uploads/":
					got.Posts++
					if q.Status == http.StatusCreated {
						got.Mounted++
					}
				case q.Method == http.MethodPut && strings.HasPrefix(q.Path, "/v2/req/app/blobs/uploads/"):
					got.BlobPuts++
				case q.Method == http.MethodPatch:
					got.Patches++
				case strings.HasPrefix(q.Path, "/v2/req/app/manifests/"):
					tag := strings.TrimPrefix(q.Path, "/v2/req/app/manifests/")
					manifests[tag] = append(manifests[tag], q.Method)
				case q.Path == "/v2/":
				default:
					t.Errorf("unexpected request %s", q)
				}
			}
			assert.DeepEqual(t, got, tc.want)
			assert.DeepEqual(t, manifests, tc.manifests)
			for _, tag := range tags {
				ref, err := name.ParseReference(strings.Replace(tag, proxy.host, reg.Host(), 1))
				assert.NilError(t, err)
				d, err := remote.Head(ref, reg.RemoteOptions()...)
				assert.NilError(t, err)
				assert.Equal(t, d.Digest.String(), rep.Image.Digest, tag)
			}
		})
	}
}
