// Package config embeds the cluster manifests cclm installs besides its own
// workloads: the CustomResourceDefinitions generated from api/ (config/crd,
// run `make -f Makefile.generate generate` after changing api/) and the
// ValidatingAdmissionPolicies that keep decentralized live migration behind
// its feature gate (config/admission).
//
// The objects are returned typed and fully populated (apiVersion and kind
// included), ready for a create or a server-side apply.
package config

import (
	"bufio"
	"bytes"
	"embed"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"sort"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"
)

//go:embed crd/*.yaml
var crdFiles embed.FS

//go:embed admission/*.yaml
var admissionFiles embed.FS

// CRDs returns the CustomResourceDefinitions of every kind in api/, in a
// stable order (by file name: group, then plural).
func CRDs() ([]*apiextensionsv1.CustomResourceDefinition, error) {
	var out []*apiextensionsv1.CustomResourceDefinition
	err := eachDocument(crdFiles, "crd", func(name string, doc []byte) error {
		crd := &apiextensionsv1.CustomResourceDefinition{}
		if err := yaml.UnmarshalStrict(doc, crd); err != nil {
			return err
		}
		if crd.Kind != "CustomResourceDefinition" {
			return fmt.Errorf("kind %q, want CustomResourceDefinition", crd.Kind)
		}
		out = append(out, crd)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// AdmissionPolicies returns the ValidatingAdmissionPolicies and their
// bindings, policies first so that they can be created in order. Every
// binding's paramRef.namespace is set to virtNamespace: the namespace of
// the KubeVirt CR whose feature gates the policies consult.
//
// Note the bindings' parameterNotFoundAction is Deny: without a KubeVirt CR
// in virtNamespace, every VirtualMachine and VirtualMachineInstanceMigration
// create or update is refused, as KubeVirt itself is not installed then.
func AdmissionPolicies(virtNamespace string) ([]client.Object, error) {
	if errs := validation.IsDNS1123Label(virtNamespace); len(errs) > 0 {
		return nil, fmt.Errorf("virt namespace %q is not a valid namespace name: %v", virtNamespace, errs)
	}
	var policies, bindings []client.Object
	err := eachDocument(admissionFiles, "admission", func(name string, doc []byte) error {
		var meta struct {
			APIVersion string `json:"apiVersion"`
			Kind       string `json:"kind"`
		}
		if err := yaml.Unmarshal(doc, &meta); err != nil {
			return err
		}
		if meta.APIVersion != admissionregistrationv1.SchemeGroupVersion.String() {
			return fmt.Errorf("apiVersion %q, want %s", meta.APIVersion, admissionregistrationv1.SchemeGroupVersion)
		}
		switch meta.Kind {
		case "ValidatingAdmissionPolicy":
			p := &admissionregistrationv1.ValidatingAdmissionPolicy{}
			if err := yaml.UnmarshalStrict(doc, p); err != nil {
				return err
			}
			policies = append(policies, p)
		case "ValidatingAdmissionPolicyBinding":
			b := &admissionregistrationv1.ValidatingAdmissionPolicyBinding{}
			if err := yaml.UnmarshalStrict(doc, b); err != nil {
				return err
			}
			if b.Spec.ParamRef == nil {
				return fmt.Errorf("binding %s has no paramRef", b.Name)
			}
			b.Spec.ParamRef.Namespace = virtNamespace
			bindings = append(bindings, b)
		default:
			return fmt.Errorf("unexpected kind %q", meta.Kind)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return append(policies, bindings...), nil
}

// eachDocument calls fn for every non-empty YAML document of every *.yaml
// file in dir of fsys, files in name order. Errors name the file.
func eachDocument(fsys embed.FS, dir string, fn func(name string, doc []byte) error) error {
	names, err := fs.Glob(fsys, path.Join(dir, "*.yaml"))
	if err != nil {
		return err
	}
	if len(names) == 0 {
		return fmt.Errorf("no manifests embedded under %s/", dir)
	}
	sort.Strings(names)
	for _, name := range names {
		data, err := fsys.ReadFile(name)
		if err != nil {
			return err
		}
		r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
		for {
			doc, err := r.Read()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
			if len(bytes.TrimSpace(stripComments(doc))) == 0 {
				continue
			}
			if err := fn(name, doc); err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
		}
	}
	return nil
}

// stripComments drops whole-line YAML comments, so that a document holding
// only comments counts as empty.
func stripComments(doc []byte) []byte {
	var out []byte
	for _, line := range bytes.Split(doc, []byte("\n")) {
		if t := bytes.TrimSpace(line); len(t) > 0 && t[0] == '#' {
			continue
		}
		out = append(out, line...)
		out = append(out, '\n')
	}
	return out
}
