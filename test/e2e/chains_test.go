//go:build e2e

package e2e

import (
	"crypto/ecdsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	v1 "github.com/tektoncd/pipeline/pkg/apis/pipeline/v1"
	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Chains' annotation on a TaskRun it has handled.
const chainsSigned = "chains.tekton.dev/signed"

// testChains checks what Tekton Chains (hack/start-cluster: x509 key,
// SLSA v1.0 provenance, both stored in the registry) makes of the runs:
// after export-image, and after the StepAction inside a user's Task, the
// registry holds a signature and an attestation for exactly the digest
// pushed, the signature verifies with the public key of the cluster's
// signing-secrets, the attestation's only subject is the pushed
// repository and digest, and the TaskRun says chains.tekton.dev/signed:
// "true". A failed export (unreachable registry) gets nothing signed.
func testChains(t *testing.T, e *env) {
	pub := chainsPublicKey(t, e)

	t.Run("export-image", func(t *testing.T) {
		r := e.runner(t).(clusterRunner)
		ws := sharedDir(t)
		writeLayout(t, filepath.Join(ws, "image"))
		r.Claim(t, "source", ws)
		repo := e.registry + "/chains/export"
		run := r.Run(ctx(t), t, taskRun("signed", "export-image", v1.Params{
			strParam("IMAGE", repo+":latest"), arrayParam("EXTRA_TAGS", repo+":1.0"),
		}, claim("source", "source")))
		assertSucceeded(t, run)
		waitSigned(t, r, run.TaskRun.Name)
		checkSignedByChains(t, pub, repo, run.Results()["IMAGE_DIGEST"])
	})

	t.Run("StepAction in a user's Task", func(t *testing.T) {
		r := e.runner(t).(clusterRunner)
		run := r.Run(ctx(t), t, stepActionRun(t, e))
		assertSucceeded(t, run)
		waitSigned(t, r, run.TaskRun.Name)
		checkSignedByChains(t, pub, e.registry+"/report2results-test", run.Results()["APP_IMAGE_DIGEST"])
	})

	t.Run("a failed export signs nothing", func(t *testing.T) {
		before := registryTags(t, e.registry)
		l, err := net.Listen("tcp", "127.0.0.1:0")
		assert.NilError(t, err)
		dead := l.Addr().String()
		assert.NilError(t, l.Close())

		r := e.runner(t).(clusterRunner)
		ws := sharedDir(t)
		writeLayout(t, filepath.Join(ws, "image"))
		r.Claim(t, "source", ws)
		run := r.Run(ctx(t), t, taskRun("unreachable", "export-image", v1.Params{
			strParam("IMAGE", dead+"/team/app:latest"), strParam("INSECURE_REGISTRIES", dead),
		}, claim("source", "source")))
		c := run.Succeeded()
		assert.Assert(t, c != nil && c.IsFalse(), "the TaskRun should fail: %+v", c)
		assert.Check(t, is.Len(run.TaskRun.Status.Results, 0))
		export := run.Step("export")
		assert.Assert(t, export != nil && export.Terminated != nil)
		assert.Check(t, is.Contains(export.Terminated.Message, "connection refused"))

		// Chains handles every finished TaskRun; wait until it has handled
		// this one, then nothing new may be in the registry.
		tr := waitChains(t, r, run.TaskRun.Name)
		t.Logf("Chains on the failed TaskRun: %s=%q", chainsSigned, tr.Annotations[chainsSigned])
		assert.DeepEqual(t, registryTags(t, e.registry), before)
	})
}

// chainsPublicKey is the public half of the x509.pem key in Chains'
// signing-secrets Secret on the cluster.
func chainsPublicKey(t *testing.T, e *env) *ecdsa.PublicKey {
	t.Helper()
	sec, err := e.cluster.Kube.CoreV1().Secrets("tekton-chains").Get(ctx(t), "signing-secrets", metav1.GetOptions{})
	assert.NilError(t, err)
	block, _ := pem.Decode(sec.Data["x509.pem"])
	assert.Assert(t, block != nil, "signing-secrets has no PEM x509.pem")
	key, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	assert.NilError(t, err)
	k, ok := key.(*ecdsa.PrivateKey)
	assert.Assert(t, ok, "x509.pem holds a %T", key)
	return &k.PublicKey
}

// waitChains waits until Chains has marked the TaskRun (its signed
// annotation, any value) and returns it.
func waitChains(t *testing.T, r clusterRunner, name string) *v1.TaskRun {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		tr, err := r.Tekton.TektonV1().TaskRuns(r.Namespace).Get(ctx(t), name, metav1.GetOptions{})
		assert.NilError(t, err)
		if _, ok := tr.Annotations[chainsSigned]; ok {
			return tr
		}
		if time.Now().After(deadline) {
			t.Fatalf("Chains did not handle TaskRun %s within 2 minutes (annotations %v)", name, tr.Annotations)
		}
		time.Sleep(time.Second)
	}
}

// waitSigned waits until Chains says it signed the TaskRun.
func waitSigned(t *testing.T, r clusterRunner, name string) {
	t.Helper()
	tr := waitChains(t, r, name)
	assert.Equal(t, tr.Annotations[chainsSigned], "true", "Chains on TaskRun %s: annotations %v", name, tr.Annotations)
}

// checkSignedByChains checks the signature (REPO:sha256-HEX.sig) and the
// attestation (.att) Chains stored for digest in repo.
func checkSignedByChains(t *testing.T, pub *ecdsa.PublicKey, repo, digest string) {
	t.Helper()
	assert.Assert(t, strings.HasPrefix(digest, "sha256:"), "digest %q", digest)
	hexDigest := strings.TrimPrefix(digest, "sha256:")

	// The signature: cosign's simple signing payload, signed.
	sigs := layers(t, repo+":sha256-"+hexDigest+".sig")
	assert.Assert(t, len(sigs) > 0, "no signature layer")
	for _, l := range sigs {
		assert.Check(t, is.Equal(l.mediaType, "application/vnd.dev.cosign.simplesigning.v1+json"))
		sig, err := base64.StdEncoding.DecodeString(l.annotations["dev.cosignproject.cosign/signature"])
		assert.NilError(t, err)
		sum := sha256.Sum256(l.data)
		assert.Assert(t, ecdsa.VerifyASN1(pub, sum[:], sig), "the signature does not verify with the signing-secrets key")
		var payload struct {
			Critical struct {
				Identity struct {
					DockerReference string `json:"docker-reference"`
				} `json:"identity"`
				Image struct {
					DockerManifestDigest string `json:"docker-manifest-digest"`
				} `json:"image"`
				Type string `json:"type"`
			} `json:"critical"`
		}
		assert.NilError(t, json.Unmarshal(l.data, &payload))
		assert.Check(t, is.Equal(payload.Critical.Image.DockerManifestDigest, digest))
		assert.Check(t, is.Equal(payload.Critical.Identity.DockerReference, repo))
		assert.Check(t, is.Equal(payload.Critical.Type, "cosign container image signature"))
	}

	// The attestation: a DSSE envelope of an in-toto statement of SLSA v1
	// provenance whose only subject is the image.
	atts := layers(t, repo+":sha256-"+hexDigest+".att")
	assert.Assert(t, len(atts) > 0, "no attestation layer")
	for _, l := range atts {
		assert.Check(t, is.Equal(l.mediaType, "application/vnd.dsse.envelope.v1+json"))
		var env struct {
			PayloadType string `json:"payloadType"`
			Payload     string `json:"payload"`
			Signatures  []struct {
				Sig string `json:"sig"`
			} `json:"signatures"`
		}
		assert.NilError(t, json.Unmarshal(l.data, &env))
		assert.Check(t, is.Equal(env.PayloadType, "application/vnd.in-toto+json"))
		payload, err := base64.StdEncoding.DecodeString(env.Payload)
		assert.NilError(t, err)
		assert.Assert(t, is.Len(env.Signatures, 1))
		sig, err := base64.StdEncoding.DecodeString(env.Signatures[0].Sig)
		assert.NilError(t, err)
		pae := fmt.Sprintf("DSSEv1 %d %s %d %s", len(env.PayloadType), env.PayloadType, len(payload), payload)
		sum := sha256.Sum256([]byte(pae))
		assert.Assert(t, ecdsa.VerifyASN1(pub, sum[:], sig), "the attestation's DSSE signature does not verify")
		var st struct {
			PredicateType string `json:"predicateType"`
			Subject       []struct {
				Name   string            `json:"name"`
				Digest map[string]string `json:"digest"`
			} `json:"subject"`
		}
		assert.NilError(t, json.Unmarshal(payload, &st))
		assert.Check(t, is.Equal(st.PredicateType, "https://slsa.dev/provenance/v1"))
		assert.Assert(t, is.Len(st.Subject, 1), "subjects: %+v", st.Subject)
		assert.Check(t, is.Equal(st.Subject[0].Name, repo))
		assert.Check(t, is.DeepEqual(st.Subject[0].Digest, map[string]string{"sha256": hexDigest}))
	}
}

type layer struct {
	mediaType   string
	annotations map[string]string
	data        []byte
}

// layers are the layers of the image at ref, each as stored (the blob,
// not uncompressed).
func layers(t *testing.T, ref string) []layer {
	t.Helper()
	r, err := name.ParseReference(ref, name.Insecure)
	assert.NilError(t, err)
	img, err := remote.Image(r)
	assert.NilError(t, err, "%s", ref)
	m, err := img.Manifest()
	assert.NilError(t, err)
	var out []layer
	for _, d := range m.Layers {
		l, err := img.LayerByDigest(d.Digest)
		assert.NilError(t, err)
		rc, err := l.Compressed()
		assert.NilError(t, err)
		data, err := io.ReadAll(rc)
		rc.Close()
		assert.NilError(t, err)
		out = append(out, layer{mediaType: string(d.MediaType), annotations: d.Annotations, data: data})
	}
	return out
}

// registryTags lists every repository:tag of the registry.
func registryTags(t *testing.T, host string) []string {
	t.Helper()
	reg, err := name.NewRegistry(host, name.Insecure)
	assert.NilError(t, err)
	repos, err := remote.Catalog(ctx(t), reg)
	assert.NilError(t, err)
	var out []string
	for _, repo := range repos {
		tags, err := remote.List(reg.Repo(repo))
		assert.NilError(t, err)
		for _, tag := range tags {
			out = append(out, repo+":"+tag)
		}
	}
	sort.Strings(out)
	return out
}
