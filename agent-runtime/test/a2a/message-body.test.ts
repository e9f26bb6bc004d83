import { Part } from '@a2a-js/sdk';
import { RequestMalformedError, UnsupportedOperationError } from '@a2a-js/sdk/errors';
import * as fc from 'fast-check';
import { jobBodyOf } from '../../src/a2a/job-handler';
import { data, text, userMessage } from './support';

// A message's parts are user input: whatever they are, the entry either
// makes the job body they stand for or refuses with an A2A error that says
// what to send; it never throws anything else.

const json = fc.jsonValue({ maxDepth: 2 });
const part: fc.Arbitrary<Part> = fc.oneof(
  fc.string().map(text),
  json.map(data),
  fc.record({ steps: fc.array(json, { maxLength: 3 }), input: fc.option(json, { nil: undefined }) }).map(data),
);

test('any parts: a body (text → one task, a steps data part → that workflow) or a malformed-request error with a message', () => {
  fc.assert(
    fc.property(fc.array(part, { maxLength: 5 }), (parts) => {
      let body: string;
      try {
        body = jobBodyOf(userMessage(parts));
      } catch (e) {
        expect(e).toBeInstanceOf(RequestMalformedError);
        expect((e as Error).message).toMatch(/^message(\.parts)?: .+/);
        return;
      }
      const datas = parts.filter((p) => p.content?.$case === 'data');
      if (datas.length > 0) {
        expect(datas).toHaveLength(1);
        expect(JSON.parse(body)).toEqual(JSON.parse(JSON.stringify(datas[0].content!.value)));
        expect(JSON.parse(body)).toHaveProperty('steps');
      } else {
        const prompt = parts.map((p) => (p.content?.$case === 'text' ? p.content.value : '')).join('\n');
        expect(JSON.parse(body)).toEqual({ tasks: [{ prompt }] });
        expect(prompt.trim()).not.toBe('');
      }
    }),
  );
});

test('a message that continues a task is refused: a task is one job', () => {
  expect(() => jobBodyOf({ ...userMessage([text('more')]), taskId: 'job-1' })).toThrow(UnsupportedOperationError);
  expect(() => jobBodyOf(undefined)).toThrow('message: required');
});
