package podrun

import (
	"testing"

	"gotest.tools/v3/assert"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestExpand(t *testing.T) {
	vars := map[string]string{"A": "x", "EMPTY": ""}
	for _, tc := range []struct{ in, want string }{
		{"plain", "plain"},
		{"$(A)", "x"},
		{"a$(A)b$(A)", "axbx"},
		{"$(EMPTY)", ""},
		{"$(UNDEFINED)", "$(UNDEFINED)"},
		{"$$(A)", "$(A)"},
		{"$$", "$"},
		{"$", "$"},
		{"$(A", "$(A"},
		{"${A}", "${A}"},
	} {
		assert.Equal(t, expand(tc.in, vars), tc.want, "expand(%q)", tc.in)
	}
}

func TestSecurityContext(t *testing.T) {
	u, g, other := int64(65532), int64(1000), int64(42)
	yes := true
	for _, tc := range []struct {
		name      string
		pod       *corev1.PodSecurityContext
		container *corev1.SecurityContext
		user      string
		group     string
		groups    []string
		readOnly  bool
	}{
		{name: "nothing: the image's user"},
		{name: "pod user, group and fsGroup", pod: &corev1.PodSecurityContext{RunAsUser: &u, RunAsGroup: &g, FSGroup: &u},
			user: "65532", group: "1000", groups: []string{"65532"}},
		{name: "container overrides the pod", pod: &corev1.PodSecurityContext{RunAsUser: &u},
			container: &corev1.SecurityContext{RunAsUser: &other, ReadOnlyRootFilesystem: &yes}, user: "42", readOnly: true},
		{name: "a group without a user keeps the image's", pod: &corev1.PodSecurityContext{RunAsGroup: &g}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := &corev1.Pod{Spec: corev1.PodSpec{SecurityContext: tc.pod}}
			user, group, groups, readOnly := securityContext(p, corev1.Container{SecurityContext: tc.container})
			assert.Equal(t, user, tc.user)
			assert.Equal(t, group, tc.group)
			assert.DeepEqual(t, groups, tc.groups)
			assert.Equal(t, readOnly, tc.readOnly)
		})
	}
}

func TestFieldValue(t *testing.T) {
	p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "ns",
		Annotations: map[string]string{"tekton.dev/ready": "READY"}, Labels: map[string]string{"app": "a"}}}
	for path, want := range map[string]string{
		"metadata.name":                            "p",
		"metadata.namespace":                       "ns",
		"metadata.annotations['tekton.dev/ready']": "READY",
		"metadata.annotations['absent']":           "",
		"metadata.labels['app']":                   "a",
	} {
		got, err := fieldValue(p, path)
		assert.NilError(t, err, path)
		assert.Equal(t, got, want, path)
	}
	_, err := fieldValue(p, "spec.nodeName")
	assert.ErrorContains(t, err, "spec.nodeName is not emulated")
}
