package catalog

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	v1 "github.com/tektoncd/pipeline/pkg/apis/pipeline/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"
)

// repoRoot is the root of the exportreport repository, three levels above
// this package (test/tekton/catalog).
func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs(filepath.Join("..", "..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatalf("repository root %s: %v", root, err)
	}
	return root
}

// object is one decoded YAML document.
type object struct {
	file  string // path relative to the repository root
	index int    // document index in the file, from 0
	kind  string
	obj   any // *v1.Task, *v1.Pipeline, a StepAction (decodeStepAction), *v1.TaskRun, *v1.PipelineRun, or a core kind
}

func (o object) String() string { return fmt.Sprintf("%s#%d (%s)", o.file, o.index, o.kind) }

// yamlFiles lists every .yaml and .yml file under tasks/, stepactions/ and
// pipelines/,
// and the example Tasks under docs/examples/.
func yamlFiles(t *testing.T, root string) []string {
	t.Helper()
	var files []string
	for _, dir := range []string{"tasks", "stepactions", "pipelines", "docs/examples"} {
		err := filepath.WalkDir(filepath.Join(root, dir), func(path string, d os.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if !d.IsDir() && (strings.HasSuffix(path, ".yaml") || strings.HasSuffix(path, ".yml")) {
				rel, err := filepath.Rel(root, path)
				if err != nil {
					return err
				}
				files = append(files, rel)
			}
			return nil
		})
		if err != nil {
			t.Fatalf("walk %s: %v", dir, err)
		}
	}
	sort.Strings(files)
	if len(files) == 0 {
		t.Fatal("no YAML under tasks/, stepactions/ or pipelines/")
	}
	return files
}

// splitDocuments splits a multi-document YAML stream on "---" lines,
// dropping empty documents.
func splitDocuments(data []byte) [][]byte {
	var docs [][]byte
	var cur bytes.Buffer
	flush := func() {
		if len(bytes.TrimSpace(stripComments(cur.Bytes()))) > 0 {
			docs = append(docs, append([]byte(nil), cur.Bytes()...))
		}
		cur.Reset()
	}
	for _, line := range bytes.SplitAfter(data, []byte("\n")) {
		if bytes.Equal(bytes.TrimRight(line, " \t\r\n"), []byte("---")) {
			flush()
			continue
		}
		cur.Write(line)
	}
	flush()
	return docs
}

func stripComments(doc []byte) []byte {
	var out bytes.Buffer
	for _, line := range bytes.SplitAfter(doc, []byte("\n")) {
		if !bytes.HasPrefix(bytes.TrimSpace(line), []byte("#")) {
			out.Write(line)
		}
	}
	return out.Bytes()
}

// decodeFile decodes every document of a file into Tekton's (or
// Kubernetes') own Go type for its apiVersion and kind, strictly: an
// unknown or duplicate field is an error, as it is for the Tekton webhook.
func decodeFile(root, rel string) ([]object, error) {
	data, err := os.ReadFile(filepath.Join(root, rel))
	if err != nil {
		return nil, err
	}
	var objs []object
	for i, doc := range splitDocuments(data) {
		var tm metav1.TypeMeta
		if err := yaml.Unmarshal(doc, &tm); err != nil {
			return nil, fmt.Errorf("%s document %d: %w", rel, i, err)
		}
		if tm.APIVersion+"/"+tm.Kind == "tekton.dev/v1beta1/StepAction" {
			sa, err := decodeStepAction(doc)
			if err != nil {
				return nil, fmt.Errorf("%s document %d (%s): strict decoding: %w", rel, i, tm.Kind, err)
			}
			objs = append(objs, object{file: rel, index: i, kind: tm.Kind, obj: sa})
			continue
		}
		var into any
		switch tm.APIVersion + "/" + tm.Kind {
		case "tekton.dev/v1/Task":
			into = &v1.Task{}
		case "tekton.dev/v1/Pipeline":
			into = &v1.Pipeline{}
		case "tekton.dev/v1/TaskRun":
			into = &v1.TaskRun{}
		case "tekton.dev/v1/PipelineRun":
			into = &v1.PipelineRun{}
		case "v1/PersistentVolumeClaim":
			into = &corev1.PersistentVolumeClaim{}
		case "v1/Secret":
			into = &corev1.Secret{}
		case "v1/ConfigMap":
			into = &corev1.ConfigMap{}
		case "v1/ServiceAccount":
			into = &corev1.ServiceAccount{}
		default:
			return nil, fmt.Errorf("%s document %d: apiVersion %q kind %q is not one this test knows (tekton.dev/v1 Task, Pipeline, TaskRun, PipelineRun; tekton.dev/v1beta1 StepAction; v1 PersistentVolumeClaim, Secret, ConfigMap, ServiceAccount)", rel, i, tm.APIVersion, tm.Kind)
		}
		if err := yaml.UnmarshalStrict(doc, into); err != nil {
			return nil, fmt.Errorf("%s document %d (%s): strict decoding: %w", rel, i, tm.Kind, err)
		}
		objs = append(objs, object{file: rel, index: i, kind: tm.Kind, obj: into})
	}
	if len(objs) == 0 {
		return nil, fmt.Errorf("%s: no YAML document", rel)
	}
	return objs, nil
}

// rawClaim is the minVersion annotation of the first document of file,
// read without Tekton's types (for a file the linked Tekton cannot decode).
func rawClaim(root, file string) string {
	data, err := os.ReadFile(filepath.Join(root, file))
	if err != nil {
		return ""
	}
	docs := splitDocuments(data)
	if len(docs) == 0 {
		return ""
	}
	var doc struct {
		Metadata struct {
			Annotations map[string]string `json:"annotations"`
		} `json:"metadata"`
	}
	if yaml.Unmarshal(docs[0], &doc) != nil {
		return ""
	}
	return doc.Metadata.Annotations[minVersionAnnotation]
}

// decodeAll decodes every file under tasks/ and pipelines/. A file that the
// linked Tekton cannot decode is an error, unless its directory's resource
// claims a minVersion newer than the linked Tekton (a tests/run.yaml using
// step refs, decoded by a Tekton before StepActions): then it is left out
// with a log line, as TestTektonValidation skips such files.
func decodeAll(t *testing.T, root string) []object {
	t.Helper()
	files := yamlFiles(t, root)
	var all []object
	for _, f := range files {
		if !isResourceFile(f) {
			continue
		}
		objs, err := decodeFile(root, f)
		if err != nil {
			t.Error(err)
			continue
		}
		all = append(all, objs...)
	}
	if t.Failed() {
		t.FailNow()
	}
	claims := claimsByDir(t, all)
	lv, err := parseVersion(linkedTektonVersion(t))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if isResourceFile(f) {
			continue
		}
		objs, err := decodeFile(root, f)
		if err != nil {
			claim := claims[catalogDir(f)]
			if claim == "" {
				claim = rawClaim(root, f) // an example claims its own
			}
			if cv, perr := parseVersion(claim); perr == nil && compareVersions(cv, lv) > 0 {
				t.Logf("%s: left out: it claims minVersion %s, newer than the linked Tekton (%v)", f, claim, err)
				continue
			}
			t.Error(err)
			continue
		}
		all = append(all, objs...)
	}
	if t.Failed() {
		t.FailNow()
	}
	return all
}
