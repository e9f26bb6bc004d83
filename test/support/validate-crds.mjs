// Validates CRD objects (KEDA, Prometheus Operator, cert-manager) with the
// @kubernetes-models packages, which ship only as ES modules: jest runs the
// tests as CommonJS, so the tests call this script in a child process.
// stdin: a JSON array of objects; stdout: a JSON array of
// { kind, name, error } (error null when the object is valid).
import { readFileSync } from 'node:fs';

const MODULES = {
  'keda.sh/v1alpha1': '@kubernetes-models/keda/keda.sh/v1alpha1',
  'monitoring.coreos.com/v1': '@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1',
  'cert-manager.io/v1': '@kubernetes-models/cert-manager/cert-manager.io/v1',
};

const objs = JSON.parse(readFileSync(0, 'utf8'));
const out = [];
for (const o of objs) {
  const base = MODULES[o.apiVersion];
  let error = null;
  if (!base) error = `no CRD model for ${o.apiVersion}`;
  else {
    try {
      const mod = await import(`${base}/${o.kind}`);
      new mod[o.kind](o).validate();
    } catch (e) {
      error = e.message;
    }
  }
  out.push({ kind: o.kind, name: o.metadata?.name, error });
}
process.stdout.write(JSON.stringify(out));
