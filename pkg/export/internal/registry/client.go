package registry

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// manifestAccept is the Accept header of a manifest HEAD: every manifest
// type, so that a tag naming another kind of manifest still answers with
// its digest.
var manifestAccept = strings.Join([]string{
	string(types.OCIManifestSchema1), string(types.OCIImageIndex),
	string(types.DockerManifestSchema2), string(types.DockerManifestList),
	string(types.DockerManifestSchema1), string(types.DockerManifestSchema1Signed),
}, ", ")

// Client talks to one repository through go-containerregistry's
// transport stack, built as remote.Write builds it: the registry transport
// (TLS policy, idle timeout, Retry-After, digest recording), the user
// agent, and the token or basic auth for the push scope (and pull on the
// repositories blobs are mounted from).
//
// There is one retry layer: each operation (the ping and token exchange
// that set the client up, a HEAD, a manifest PUT, a blob upload's POST and
// PUT together) runs under Retry, and nothing below it retries.
type Client struct {
	http    *http.Client
	base    string // scheme://host/v2/repo
	repo    name.Repository
	backoff remote.Backoff
}

// Config is what a Client needs besides its repository.
type Config struct {
	// Transport is the HTTP transport under the auth (NewTransport, wrapped
	// in WithRetryAfter).
	Transport http.RoundTripper
	// Keychain resolves the registry's credentials.
	Keychain authn.Keychain
	// Backoff paces Retry; Steps bounds the tries.
	Backoff remote.Backoff
	// UserAgent is sent with every request.
	UserAgent string
}

// NewClient sets up a Client for repo: it resolves the credentials, pings
// the registry and gets a token for push on repo and pull on pullFrom (the
// repositories blobs are mounted from), retrying transient failures.
func NewClient(ctx context.Context, repo name.Repository, pullFrom []name.Repository, c Config) (*Client, error) {
	auth, err := authn.Resolve(ctx, c.Keychain, repo)
	if err != nil {
		return nil, fmt.Errorf("credentials for %s: %w", repo.RegistryStr(), err)
	}
	scopes := []string{repo.Scope(transport.PushScope)}
	for _, r := range pullFrom {
		if s := r.Scope(transport.PullScope); r.Name() != repo.Name() && !slices.Contains(scopes, s) {
			scopes = append(scopes, s)
		}
	}
	inner := transport.NewUserAgent(c.Transport, c.UserAgent)
	var rt http.RoundTripper
	err = Retry(ctx, c.Backoff, func(ctx context.Context) error {
		var err error
		rt, err = transport.NewWithContext(ctx, repo.Registry, auth, inner, scopes) // pings the registry
		return err
	})
	if err != nil {
		return nil, err
	}
	return &Client{
		http:    &http.Client{Transport: rt},
		base:    repo.Scheme() + "://" + repo.RegistryStr() + "/v2/" + repo.RepositoryStr(),
		repo:    repo,
		backoff: c.Backoff,
	}, nil
}

// Retry runs f under the package's Retry with the client's backoff.
func (rc *Client) Retry(ctx context.Context, f func(context.Context) error) error {
	return Retry(ctx, rc.backoff, f)
}

// headManifest returns the digest the registry holds for tag, or "" when
// it has none (404, or 403 as some registries answer for a missing tag).
func (rc *Client) HeadManifest(ctx context.Context, tag string) (digest string, err error) {
	err = rc.Retry(ctx, func(ctx context.Context) error {
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
func (rc *Client) PutManifest(ctx context.Context, tag, mediaType string, raw []byte) error {
	return rc.Retry(ctx, func(ctx context.Context) error {
		resp, err := rc.do(ctx, http.MethodPut, rc.base+"/manifests/"+tag, bytes.NewReader(raw), "Content-Type", mediaType)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		return transport.CheckError(resp, http.StatusOK, http.StatusCreated, http.StatusAccepted)
	})
}

// headBlob says whether the repository holds the blob d.
func (rc *Client) HeadBlob(ctx context.Context, d v1.Hash) (exists bool, err error) {
	err = rc.Retry(ctx, func(ctx context.Context) error {
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
func (rc *Client) do(ctx context.Context, method, url string, body io.Reader, header ...string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, url, body)
	if err != nil {
		return nil, err
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	return rc.http.Do(req)
}
