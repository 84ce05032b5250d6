// Package install puts cclm's API and its KubeVirt installation into a
// cluster: the CRDs, the admission policies, the virt namespace and the
// KubeVirt CR. The same code serves the lab, the tests, and a real cluster.
package install

import (
	"context"
	"fmt"
	"strings"
	"time"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apiextensionsclient "k8s.io/apiextensions-apiserver/pkg/client/clientset/clientset"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"

	"github.com/cclm-io/cclm/config"
	"github.com/cclm-io/cclm/internal/kube"
)

// CRDs creates or updates every cclm CRD and waits until each is
// established, so that objects of its kind can be created right after.
func CRDs(ctx context.Context, restConfig *rest.Config) error {
	crds, err := config.CRDs()
	if err != nil {
		return err
	}
	client, err := apiextensionsclient.NewForConfig(restConfig)
	if err != nil {
		return err
	}
	api := client.ApiextensionsV1().CustomResourceDefinitions()
	for _, crd := range crds {
		if err := createOrUpdateCRD(ctx, api, crd); err != nil {
			return err
		}
	}
	for _, crd := range crds {
		name := crd.Name
		err := kube.Poll(ctx, 100*time.Millisecond, time.Minute, "CRD "+name+" to be established",
			func(ctx context.Context) (bool, string, error) {
				current, err := api.Get(ctx, name, metav1.GetOptions{})
				if err != nil {
					return false, err.Error(), nil
				}
				return crdEstablished(current)
			})
		if err != nil {
			return err
		}
	}
	return nil
}

type crdAPI interface {
	Get(ctx context.Context, name string, opts metav1.GetOptions) (*apiextensionsv1.CustomResourceDefinition, error)
	Create(ctx context.Context, crd *apiextensionsv1.CustomResourceDefinition, opts metav1.CreateOptions) (*apiextensionsv1.CustomResourceDefinition, error)
	Update(ctx context.Context, crd *apiextensionsv1.CustomResourceDefinition, opts metav1.UpdateOptions) (*apiextensionsv1.CustomResourceDefinition, error)
}

func createOrUpdateCRD(ctx context.Context, api crdAPI, crd *apiextensionsv1.CustomResourceDefinition) error {
	current, err := api.Get(ctx, crd.Name, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		_, err = api.Create(ctx, crd, metav1.CreateOptions{FieldManager: kube.FieldManager})
	case err == nil:
		crd.ResourceVersion = current.ResourceVersion
		_, err = api.Update(ctx, crd, metav1.UpdateOptions{FieldManager: kube.FieldManager})
	}
	if err != nil {
		return fmt.Errorf("install CRD %s: %w", crd.Name, err)
	}
	return nil
}

// crdEstablished reports whether the CRD serves; a CRD whose names clash
// with another's never will, so that is an error rather than a wait.
func crdEstablished(crd *apiextensionsv1.CustomResourceDefinition) (bool, string, error) {
	var pending []string
	for _, cond := range crd.Status.Conditions {
		switch {
		case cond.Type == apiextensionsv1.Established && cond.Status == apiextensionsv1.ConditionTrue:
			return true, "", nil
		case cond.Type == apiextensionsv1.NamesAccepted && cond.Status == apiextensionsv1.ConditionFalse:
			return false, "", fmt.Errorf("CRD %s: names not accepted: %s", crd.Name, cond.Message)
		default:
			pending = append(pending, fmt.Sprintf("%s=%s", cond.Type, cond.Status))
		}
	}
	return false, "conditions: " + strings.Join(pending, ", "), nil
}
