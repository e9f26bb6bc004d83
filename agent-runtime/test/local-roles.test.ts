import { mkdtempSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { loadAgentConfigFile } from '../src/config';
import { readRoles } from '../src/local/launcher';
import { synthesizedManifests } from './support/cluster';

// Local mode reads a role's config volume as the pod would see it: in a
// mesh, the role's ConfigMap and the cluster's shared peer list projected
// into one directory.

test("a mesh role's projected config volume yields agent-config.json and the shared peers.json, which load as one config", () => {
  const roles = readRoles(synthesizedManifests().mesh);
  expect(roles).toHaveLength(5);
  for (const role of roles) {
    expect(Object.keys(role.configFiles).sort()).toEqual(['agent-config.json', 'peers.json']);
    const dir = mkdtempSync(path.join(os.tmpdir(), 'agent-roles-'));
    for (const [name, text] of Object.entries(role.configFiles)) writeFileSync(path.join(dir, name), text);
    const config = loadAgentConfigFile(path.join(dir, 'agent-config.json'));
    expect(config.peers.map((p) => p.role)).toEqual(roles.map((r) => r.name));
  }
});

test('a hub role keeps its peers inline and has only agent-config.json', () => {
  const roles = readRoles(synthesizedManifests()['hub-and-spoke']);
  const coordinator = roles.find((r) => r.name === 'coordinator')!;
  expect(Object.keys(coordinator.configFiles)).toEqual(['agent-config.json']);
  expect(JSON.parse(coordinator.configJson).peers).toHaveLength(4);
});
