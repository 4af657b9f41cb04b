// Command bundle pushes every Task, StepAction and Pipeline of a release
// YAML as a Tekton bundle, one image per resource, and writes their
// references pinned by digest, one per line:
//
//	task/export-image REGISTRY/REPO/bundles/export-image@sha256:...
//
// Tekton's bundle format (what `tkn bundle push` writes and the bundles
// resolver reads): one layer per resource, a tar holding the resource as
// JSON, with the layer annotations dev.tekton.image.apiVersion,
// dev.tekton.image.kind (lowercase, singular) and dev.tekton.image.name.
// Each bundle is also tagged with the resource's app.kubernetes.io/version
// label. Layers and config carry no time stamps, so the same release YAML
// gives the same digests.
//
//	go run ./hack/bundle [-insecure] -repo REGISTRY/REPO -o FILE RELEASE.yaml
package main

import (
	"archive/tar"
	"bytes"
	"flag"
	"fmt"
	"io"
	"os"
	"regexp"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"sigs.k8s.io/yaml"

	"github.com/exportreport/exportreport/pkg/atomicfile"
)

// Annotations of a Tekton bundle layer.
const (
	annotationAPIVersion = "dev.tekton.image.apiVersion"
	annotationKind       = "dev.tekton.image.kind"
	annotationName       = "dev.tekton.image.name"
)

var bundled = map[string]bool{"Task": true, "StepAction": true, "Pipeline": true}

func main() {
	insecure := flag.Bool("insecure", false, "push over plain HTTP / unverified TLS")
	repo := flag.String("repo", "", "where the bundles go: REPO/bundles/NAME (required)")
	out := flag.String("o", "", "file that receives the references (required); written atomically")
	flag.Parse()
	if *repo == "" || *out == "" || flag.NArg() != 1 {
		fmt.Fprintln(os.Stderr, "usage: bundle [-insecure] -repo REGISTRY/REPO -o FILE RELEASE.yaml")
		os.Exit(2)
	}
	var opts []name.Option
	if *insecure {
		opts = append(opts, name.Insecure)
	}
	docs, err := readRelease(flag.Arg(0))
	if err != nil {
		fmt.Fprintln(os.Stderr, "bundle:", err)
		os.Exit(2)
	}
	var lines []string
	for _, d := range docs {
		ref, err := push(*repo, d, opts)
		if err != nil {
			fmt.Fprintf(os.Stderr, "bundle: %s/%s: %v\n", strings.ToLower(d.Kind), d.Name, err)
			os.Exit(1)
		}
		lines = append(lines, strings.ToLower(d.Kind)+"/"+d.Name+" "+ref)
	}
	if err := atomicfile.ReplaceFile(*out, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
		fmt.Fprintln(os.Stderr, "bundle:", err)
		os.Exit(1)
	}
}

// resource is one bundled document of the release.
type resource struct {
	APIVersion string
	Kind       string
	Name       string
	Version    string // app.kubernetes.io/version label
	JSON       []byte
}

// readRelease returns the Tasks, StepActions and Pipelines of a YAML
// stream, each as JSON.
func readRelease(path string) ([]resource, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var out []resource
	for i, doc := range regexp.MustCompile(`(?m)^---[ \t]*$`).Split(string(data), -1) {
		if strings.TrimSpace(doc) == "" {
			continue
		}
		j, err := yaml.YAMLToJSON([]byte(doc))
		if err != nil {
			return nil, fmt.Errorf("%s: document %d: %w", path, i+1, err)
		}
		var meta struct {
			APIVersion string `json:"apiVersion"`
			Kind       string `json:"kind"`
			Metadata   struct {
				Name   string            `json:"name"`
				Labels map[string]string `json:"labels"`
			} `json:"metadata"`
		}
		if err := yaml.Unmarshal(j, &meta); err != nil {
			return nil, fmt.Errorf("%s: document %d: %w", path, i+1, err)
		}
		if !bundled[meta.Kind] {
			continue
		}
		if meta.Metadata.Name == "" || meta.APIVersion == "" {
			return nil, fmt.Errorf("%s: document %d: a %s without apiVersion or name", path, i+1, meta.Kind)
		}
		out = append(out, resource{
			APIVersion: meta.APIVersion, Kind: meta.Kind, Name: meta.Metadata.Name,
			Version: meta.Metadata.Labels["app.kubernetes.io/version"], JSON: j,
		})
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s: no Task, StepAction or Pipeline", path)
	}
	return out, nil
}

// push pushes r's bundle to REPO/bundles/NAME (tagged with its version, or
// latest) and returns its reference by digest.
func push(repo string, r resource, opts []name.Option) (string, error) {
	tag := r.Version
	if tag == "" {
		tag = "latest"
	}
	ref, err := name.ParseReference(repo+"/bundles/"+r.Name+":"+tag, opts...)
	if err != nil {
		return "", err
	}
	var tb bytes.Buffer
	tw := tar.NewWriter(&tb)
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: r.Name + ".json", Mode: 0o644, Size: int64(len(r.JSON))}); err != nil {
		return "", err
	}
	if _, err := tw.Write(r.JSON); err != nil {
		return "", err
	}
	if err := tw.Close(); err != nil {
		return "", err
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(tb.Bytes())), nil
	}, tarball.WithMediaType(types.OCILayer))
	if err != nil {
		return "", err
	}
	img, err := mutate.Append(mutate.MediaType(mutate.ConfigMediaType(empty.Image, types.OCIConfigJSON), types.OCIManifestSchema1),
		mutate.Addendum{Layer: layer, Annotations: map[string]string{
			annotationAPIVersion: r.APIVersion,
			annotationKind:       strings.ToLower(r.Kind),
			annotationName:       r.Name,
		}})
	if err != nil {
		return "", err
	}
	if err := remote.Write(ref, img, remote.WithAuthFromKeychain(authn.DefaultKeychain)); err != nil {
		return "", fmt.Errorf("push %s: %w", ref, err)
	}
	d, err := img.Digest()
	if err != nil {
		return "", err
	}
	return ref.Context().Digest(d.String()).String(), nil
}
