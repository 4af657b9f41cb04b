//go:build !tekton_pre_stepactions

package catalog

// StepAction access for Tekton 0.62 and newer, which have the
// tekton.dev/v1beta1 StepAction and steps with `ref`. hack/test-tekton builds
// with -tags=tekton_pre_stepactions for older Tekton (stepaction_pre_test.go).

import (
	"context"

	v1 "github.com/tektoncd/pipeline/pkg/apis/pipeline/v1"
	"github.com/tektoncd/pipeline/pkg/apis/pipeline/v1beta1"
	"knative.dev/pkg/apis"
	"sigs.k8s.io/yaml"
)

func decodeStepAction(doc []byte) (any, error) {
	sa := &v1beta1.StepAction{}
	return sa, yaml.UnmarshalStrict(doc, sa)
}

func validateStepAction(ctx context.Context, obj any) (*apis.FieldError, bool) {
	sa, ok := obj.(*v1beta1.StepAction)
	if !ok {
		return nil, false
	}
	sa.SetDefaults(ctx)
	return sa.Validate(ctx), true
}

func viewStepAction(obj any) (*stepActionView, bool) {
	sa, ok := obj.(*v1beta1.StepAction)
	if !ok {
		return nil, false
	}
	v := &stepActionView{Meta: &sa.ObjectMeta, Image: sa.Spec.Image, Command: sa.Spec.Command, Args: sa.Spec.Args, Params: sa.Spec.Params}
	for _, r := range sa.Spec.Results {
		v.Results = append(v.Results, r.Name)
	}
	return v, true
}

// stepRef returns what a step's `ref` names: a StepAction by name, or a
// resolver's pathInRepo, and the string params the step passes.
func stepRef(step v1.Step) (ref stepActionRef, ok bool) {
	if step.Ref == nil {
		return ref, false
	}
	ref.name = step.Ref.Name
	for _, p := range step.Ref.Params {
		if p.Name == "pathInRepo" {
			ref.pathInRepo = p.Value.StringVal
		}
	}
	ref.params = map[string]string{}
	for _, p := range step.Params {
		if p.Value.Type == v1.ParamTypeString {
			ref.params[p.Name] = p.Value.StringVal
		}
	}
	return ref, true
}

// stepActionRuleCases are the cases of TestResultRuleCatchesMistakes that
// reference the StepAction.
func stepActionRuleCases() []ruleCase {
	str := func(s string) v1.ParamValue { return *v1.NewStructuredValues(s) }
	return []ruleCase{
		{
			name: "StepAction with prefix and list from the step's params",
			spec: v1.TaskSpec{
				Results: []v1.TaskResult{{Name: "APP_IMAGE_DIGEST"}, {Name: "APP_IMAGE_URL"}, {Name: "APP_IMAGES"}},
				Steps: []v1.Step{{Name: "bridge", Ref: &v1.Ref{Name: stepActionName}, Params: v1.Params{
					{Name: "PREFIX", Value: str("APP")},
					{Name: "RESULTS", Value: str("IMAGE_DIGEST,IMAGE_URL,IMAGES")},
				}}},
			},
		},
		{
			name: "StepAction defaults, Task lacks IMAGE_URL",
			spec: v1.TaskSpec{
				Results: []v1.TaskResult{{Name: "IMAGE_DIGEST"}},
				Steps:   []v1.Step{{Name: "bridge", Ref: &v1.Ref{Name: stepActionName}}},
			},
			want: "writes result IMAGE_URL that the Task does not declare",
		},
	}
}
