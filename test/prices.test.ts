import { Testing } from 'cdk8s';
import { costUsd } from '../agent-runtime/src/cost';
import { AgentCluster, ModelCatalog, Topology } from '../src';

// The default catalog's list prices, as the runtime charges them: one known
// usage per model (12,000 prompt tokens of which 4,000 cached, 3,000
// completion tokens), priced from the config the constructs render.

const usage = { promptTokens: 12_000, cachedPromptTokens: 4_000, completionTokens: 3_000, totalTokens: 15_000 };

function renderedCatalog(): Record<string, { inputUsdPerMTok: number; outputUsdPerMTok: number; cachedInputUsdPerMTok: number }> {
  const chart = Testing.chart();
  new AgentCluster(chart, 'agents', {
    topology: Topology.hubAndSpoke({ coordinator: { name: 'c' }, workers: [{ name: 'w', models: ['gpt-4.1', 'claude-sonnet-4.5', 'gemini-2.5-flash', 'deepseek-v3.2'] }] }),
    upstream: { baseUrl: 'https://llm.example.com/v1', apiKeySecretName: 'k' },
  });
  const cm = Testing.synth(chart).find((o: { kind: string; metadata: { name: string } }) => o.kind === 'ConfigMap' && o.metadata.name === 'w-config');
  return JSON.parse(cm.data['agent-config.json']).catalog;
}

test.each([
  // model, input, cached input, output (USD per million tokens), cost of the usage above
  ['gpt-4.1', 2, 0.5, 8, 0.042], //            8,000 × 2    + 4,000 × 0.5   + 3,000 × 8
  ['claude-sonnet-4.5', 3, 0.3, 15, 0.0702], // 8,000 × 3    + 4,000 × 0.3   + 3,000 × 15
  ['gemini-2.5-flash', 0.3, 0.03, 2.5, 0.01002], // 8,000 × 0.3 + 4,000 × 0.03 + 3,000 × 2.5
  ['deepseek-v3.2', 0.28, 0.028, 0.42, 0.003612], // 8,000 × 0.28 + 4,000 × 0.028 + 3,000 × 0.42
])('%s: list prices %p in, %p cached, %p out; the usage costs %p USD', (model, input, cached, output, cost) => {
  const entry = renderedCatalog()[model];
  expect(entry).toEqual(expect.objectContaining({ inputUsdPerMTok: input, cachedInputUsdPerMTok: cached, outputUsdPerMTok: output }));
  expect(costUsd(entry, usage)).toBeCloseTo(cost, 12);
});

test('a model declared with only an input price charges it for output and cached tokens too', () => {
  const catalog = ModelCatalog.defaults().withModel({ id: 'local-llama', inputUsdPerMTok: 0.1 });
  expect(catalog._resolve('local-llama')).toEqual(expect.objectContaining({ inputUsdPerMTok: 0.1, outputUsdPerMTok: 0.1, cachedInputUsdPerMTok: 0.1 }));
});

test.each([
  ['inputUsdPerMTok', -1],
  ['outputUsdPerMTok', Number.NaN],
  ['cachedInputUsdPerMTok', Number.POSITIVE_INFINITY],
  ['cachedInputUsdPerMTok', -0.01],
])('a price %s=%p fails synth naming the construct path, the model, the field and the fix', (field, value) => {
  const chart = Testing.chart();
  new AgentCluster(chart, 'agents', {
    topology: Topology.hubAndSpoke({ coordinator: { name: 'c' }, workers: [{ name: 'w' }] }),
    upstream: { baseUrl: 'https://llm.example.com/v1', apiKeySecretName: 'k' },
    catalog: ModelCatalog.defaults().withModel({ id: 'local-llama', inputUsdPerMTok: 1, [field]: value }),
  });
  expect(() => Testing.synth(chart)).toThrow(
    `[test/agents] catalog: model 'local-llama' has ${field}=${value}: a price must be a finite number >= 0. Fix: set it in USD per million tokens, 0 for a free model.`,
  );
});
