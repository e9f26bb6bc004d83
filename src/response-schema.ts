import Ajv from 'ajv';
import Ajv2020 from 'ajv/dist/2020';

const NAME = /^[a-zA-Z0-9_-]{1,64}$/;
const DRAFT_2020 = /json-schema\.org\/draft\/2020-12\/schema/;
const DRAFT_07 = /json-schema\.org\/draft-07\/schema/;

const checkers = new Map<string, Ajv>();
/**
 * One ajv per dialect for the whole synth: building one compiles the
 * meta-schema (~75 ms). Lenient on keywords and formats it does not know (the
 * meta-schema allows them, and the runtime compiles with strict off too);
 * strict on what the meta-schema and a compile reject.
 */
function checker(dialect: 'draft-07' | '2020-12'): Ajv {
  let ajv = checkers.get(dialect);
  if (!ajv) {
    const options = { strict: false, validateFormats: false, allErrors: false };
    ajv = dialect === '2020-12' ? new Ajv2020(options) : new Ajv(options);
    checkers.set(dialect, ajv);
  }
  return ajv;
}

/**
 * A JSON Schema that a role's answers must match (OpenAI structured output,
 * `response_format: json_schema`), with its name.
 *
 * A class with factories rather than a plain prop because a JSON Schema is an
 * arbitrary JSON value, which jsii props cannot type: the schema travels as
 * JSON text, the same in every jsii language, and is checked against the
 * JSON Schema meta-schema (draft-07, or 2020-12 when its `$schema` says so)
 * at synth.
 */
export class ResponseSchema {
  /**
   * A schema given as JSON text, e.g. read from a `.json` file.
   * @param name the schema's name (letters, digits, `_` and `-`, at most 64)
   * @param json the JSON Schema as JSON text; its top level must be an object
   */
  public static fromJson(name: string, json: string): ResponseSchema {
    return new ResponseSchema(name, json);
  }

  /**
   * A schema given as an object literal (TypeScript and JavaScript).
   * @param name the schema's name (letters, digits, `_` and `-`, at most 64)
   * @param schema the JSON Schema
   */
  public static fromObject(name: string, schema: { [key: string]: any }): ResponseSchema {
    let json: string;
    try {
      json = JSON.stringify(schema);
    } catch (e) {
      return new ResponseSchema(name, '', `cannot be written as JSON (${(e as Error).message})`);
    }
    return new ResponseSchema(name, json);
  }

  /** The schema's name, sent as `json_schema.name`. */
  public readonly name: string;
  /** The schema as JSON text. */
  public readonly json: string;
  private readonly notJson?: string;

  private constructor(name: string, json: string, notJson?: string) {
    this.name = name;
    this.json = json;
    this.notJson = notJson;
  }

  /**
   * Why this is not a usable schema, as `[field, problem, fix]` lines; empty when it is.
   * @internal
   */
  public _problems(): Array<[string, string, string]> {
    const out: Array<[string, string, string]> = [];
    if (!NAME.test(this.name)) {
      out.push(['responseSchema.name', `'${this.name}' is not a schema name`, 'use 1 to 64 letters, digits, underscores or dashes']);
    }
    if (this.notJson) return [...out, ['responseSchema.schema', this.notJson, 'pass a plain JSON object']];
    let schema: unknown;
    try {
      schema = JSON.parse(this.json);
    } catch (e) {
      return [...out, ['responseSchema.schema', `is not JSON (${(e as Error).message})`, 'pass the schema as valid JSON text']];
    }
    if (typeof schema !== 'object' || schema === null || Array.isArray(schema)) {
      return [...out, ['responseSchema.schema', 'is not a JSON object', 'give an object schema, e.g. { "type": "object", "properties": { ... } }']];
    }
    const declared = (schema as { $schema?: unknown }).$schema;
    if (declared !== undefined && !(typeof declared === 'string' && (DRAFT_2020.test(declared) || DRAFT_07.test(declared)))) {
      return [...out, ['responseSchema.schema', `declares $schema ${JSON.stringify(declared)}`, 'write it as draft-07 or 2020-12, or leave $schema out (draft-07)']];
    }
    const ajv = checker(typeof declared === 'string' && DRAFT_2020.test(declared) ? '2020-12' : 'draft-07');
    if (!ajv.validateSchema(schema as object)) {
      const e = ajv.errors![0];
      return [...out, ['responseSchema.schema', `is not a valid JSON Schema: ${e.instancePath || '(root)'} ${e.message}`, 'correct the schema so it matches the JSON Schema meta-schema']];
    }
    try {
      ajv.compile(schema as object);
    } catch (e) {
      out.push(['responseSchema.schema', `does not compile (${(e as Error).message})`, 'fix the reference or pattern it names']);
    } finally {
      // forget it again, so the same $id in another role's schema is no clash
      ajv.removeSchema(schema as object);
    }
    return out;
  }

  /**
   * The parsed schema, or undefined when the text is not a JSON object (`_problems()` says why).
   * @internal
   */
  public _parsed(): { [k: string]: unknown } | undefined {
    try {
      const v: unknown = JSON.parse(this.json);
      return typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as { [k: string]: unknown }) : undefined;
    } catch {
      return undefined;
    }
  }
}
