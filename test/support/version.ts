import { DEFAULT_AGENT_IMAGE } from '../../src';
import { AGENT_IMAGE_REPOSITORY } from '../../src/version';

// The default image tag is the package's version, which is 0.0.0 in the
// repository and the released version while `npx projen release` builds and
// tests. Snapshots and the committed dist/ write it as <version> so they hold
// in both; test/version.test.ts checks what it is.

/** `value` with the default image (exactly) written as `<repository>:<version>`. */
export function withVersionPlaceholder<T>(value: T): T {
  return JSON.parse(JSON.stringify(value).split(`"${DEFAULT_AGENT_IMAGE}"`).join(`"${AGENT_IMAGE_REPOSITORY}:<version>"`));
}

/** Synthesized YAML with any tag of the default image repository written as `<version>`. */
export function yamlWithVersionPlaceholder(yaml: string): string {
  return yaml.split('\n').map((line) => line.replace(new RegExp(`(image: ${AGENT_IMAGE_REPOSITORY}):\\S+$`), '$1:<version>')).join('\n');
}
