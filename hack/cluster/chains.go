package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	appsv1 "k8s.io/api/apps/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
)

// chainsSecretPath is where Chains' controller reads its signing keys; a
// constant in Chains (its Deployment mounts the signing-secrets Secret
// there), so the local process finds them there too.
const chainsSecretPath = "/etc/signing-secrets"

// chainsConfig is chains-config as the cluster runs it: TaskRuns
// attested in SLSA v1.0 (slsa/v2alpha4), images signed (simplesigning),
// both with the x509 key and stored in the registry next to the image
// (plain HTTP there).
var chainsConfig = map[string]string{
	"artifacts.taskrun.format":        "slsa/v2alpha4",
	"artifacts.taskrun.storage":       "oci",
	"artifacts.taskrun.signer":        "x509",
	"artifacts.oci.format":            "simplesigning",
	"artifacts.oci.storage":           "oci",
	"artifacts.oci.signer":            "x509",
	"storage.oci.repository.insecure": "true",
	"transparency.enabled":            "false",
}

// startChains installs Tekton Chains from its module's config/ (what its
// release is made from) with a fresh P-256 signing key in signing-secrets
// (x509.pem, unencrypted PKCS#8; the public key is kept at
// STATE/chains/x509.pub for verifiers) and runs its controller as a local
// process, as startTekton does for Tekton's.
func (c *cluster) startChains(ctx context.Context) error {
	if c.opts.ChainsBin == "" {
		return nil
	}
	if _, err := os.Stat(chainsSecretPath); err == nil {
		return fmt.Errorf("%s exists and was not made by this cluster: Chains' controller reads its key there; move it away", chainsSecretPath)
	}
	keyPEM, pubPEM, err := signingKey()
	if err != nil {
		return err
	}
	dir := c.s.path("chains")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "x509.pub"), pubPEM, 0o644); err != nil {
		return err
	}
	c.s.Added.SigningSecrets = chainsSecretPath
	if err := c.s.save(); err != nil {
		return err
	}
	if err := os.MkdirAll(chainsSecretPath, 0o700); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(chainsSecretPath, "x509.pem"), keyPEM, 0o600); err != nil {
		return err
	}

	objs, err := readConfigDir(c.opts.ChainsConfig)
	if err != nil {
		return err
	}
	var deployment *appsv1.Deployment
	var apply []*unstructured.Unstructured
	for _, o := range objs {
		switch {
		case o.GetKind() == "Deployment" && o.GetName() == "tekton-chains-controller":
			deployment = &appsv1.Deployment{}
			if err := runtime.DefaultUnstructuredConverter.FromUnstructured(o.Object, deployment); err != nil {
				return err
			}
		case o.GetKind() == "Secret" && o.GetName() == "signing-secrets":
			o.Object["data"] = map[string]any{"x509.pem": base64.StdEncoding.EncodeToString(keyPEM)}
		case o.GetKind() == "ConfigMap" && o.GetName() == "chains-config":
			data := map[string]any{}
			for k, v := range chainsConfig {
				data[k] = v
			}
			o.Object["data"] = data
		}
		if !notApplied[o.GetKind()] {
			apply = append(apply, o)
		}
	}
	if deployment == nil {
		return errors.New("no Deployment tekton-chains-controller in " + c.opts.ChainsConfig)
	}
	a, err := newApplier(c.restCfg)
	if err != nil {
		return err
	}
	if err := a.applyOrdered(ctx, apply); err != nil {
		return err
	}
	p, err := c.runDeployment(ctx, deployment, c.opts.ChainsBin, nil, nil)
	if err != nil {
		return err
	}
	return c.waitLeases(ctx, p, "tekton-chains", "watcher.github.com.tektoncd.chains.pkg.reconciler.taskrun")
}

func signingKey() (keyPEM, pubPEM []byte, err error) {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		return nil, nil, err
	}
	pub, err := x509.MarshalPKIXPublicKey(&k.PublicKey)
	if err != nil {
		return nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub}), nil
}
