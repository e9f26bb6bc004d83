import { readFileSync } from 'node:fs';
import { join } from 'node:path';

// Not exported from index.ts.
//
// The library's version is read from the package.json that ships one folder
// above this file (lib/ in the tarball, src/ in this repository) rather than
// copied into the source: a release bumps that one file before it compiles and
// packs, so the tarball, the default image tag and the image built from the
// same release carry one version and cannot drift apart.
function ownVersion(): string {
  const manifest = JSON.parse(readFileSync(join(__dirname, '..', 'package.json'), 'utf8')) as { name?: string; version?: string };
  if (manifest.name !== 'cdk8s-agent-cluster' || typeof manifest.version !== 'string') {
    throw new Error(`cdk8s-agent-cluster: ${join(__dirname, '..', 'package.json')} is not this package's manifest; the library must be installed as a package (lib/ beside package.json)`);
  }
  return manifest.version;
}

/** The version of this package, as its package.json states it. */
export const PACKAGE_VERSION = ownVersion();

/** The agent runtime's image name; its tag is PACKAGE_VERSION. */
export const AGENT_IMAGE_REPOSITORY = 'cdk8s-agent-cluster/agent-runtime';
