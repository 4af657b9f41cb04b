//go:build tekton_pre_stepactions

package catalog

// StepAction access for Tekton before 0.62: no tekton.dev/v1beta1
// StepAction and no `ref` in steps. The StepAction file claims a newer
// minVersion, so it is decoded here only for its metadata and interface
// (leniently: this Tekton has no type to decode it strictly into), and never
// validated.

import (
	"context"
	"encoding/json"
	"errors"

	v1 "github.com/tektoncd/pipeline/pkg/apis/pipeline/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"knative.dev/pkg/apis"
	"sigs.k8s.io/yaml"
)

type stepActionDoc struct {
	metav1.TypeMeta `json:",inline"`
	ObjectMeta      metav1.ObjectMeta `json:"metadata"`
	Spec            struct {
		Image   string           `json:"image"`
		Command []string         `json:"command"`
		Args    []string         `json:"args"`
		Params  []v1.ParamSpec   `json:"params"`
		Results []map[string]any `json:"results"`
	} `json:"spec"`
}

func decodeStepAction(doc []byte) (any, error) {
	j, err := yaml.YAMLToJSON(doc)
	if err != nil {
		return nil, err
	}
	sa := &stepActionDoc{}
	return sa, json.Unmarshal(j, sa)
}

func validateStepAction(_ context.Context, obj any) (*apis.FieldError, bool) {
	if _, ok := obj.(*stepActionDoc); !ok {
		return nil, false
	}
	return apis.ErrGeneric(errors.New("this Tekton has no StepAction; the file claims a newer minVersion and must have been skipped").Error()), true
}

func viewStepAction(obj any) (*stepActionView, bool) {
	sa, ok := obj.(*stepActionDoc)
	if !ok {
		return nil, false
	}
	v := &stepActionView{Meta: &sa.ObjectMeta, Image: sa.Spec.Image, Command: sa.Spec.Command, Args: sa.Spec.Args, Params: sa.Spec.Params}
	for _, r := range sa.Spec.Results {
		if n, ok := r["name"].(string); ok {
			v.Results = append(v.Results, n)
		}
	}
	return v, true
}

func stepRef(v1.Step) (stepActionRef, bool) { return stepActionRef{}, false }

func stepActionRuleCases() []ruleCase { return nil }
