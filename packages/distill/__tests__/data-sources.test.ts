// Document sources: what each yields (ids, order, text unchanged) and the errors for malformed input, which name
// the file and the line.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { DocumentSourceError, chatJsonlDocuments, jsonlDocuments, textFileDocuments } from '../src/data/index.js';
import type { Document, DocumentSource } from '../src/data/index.js';

const root = mkdtempSync(join(tmpdir(), 'farskip-sources-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

async function collect(source: DocumentSource): Promise<Document[]> {
  const out: Document[] = [];
  for await (const d of source) out.push(d);
  return out;
}

async function sourceError(source: DocumentSource): Promise<DocumentSourceError> {
  try {
    await collect(source);
  } catch (e) {
    expect(e).toBeInstanceOf(DocumentSourceError);
    return e as DocumentSourceError;
  }
  throw new Error('the source did not fail');
}

const write = (name: string, text: string): string => {
  const path = join(root, name);
  writeFileSync(path, text);
  return path;
};

describe('text files', () => {
  it('directories recursively in path order, .txt only; files given directly by base name; re-iterable', async () => {
    const dir = join(root, 'corpus');
    mkdirSync(join(dir, 'b'), { recursive: true });
    writeFileSync(join(dir, 'b', 'z.txt'), 'bz');
    writeFileSync(join(dir, 'a.txt'), 'a\r\n');
    writeFileSync(join(dir, 'c.TXT'), 'c');
    writeFileSync(join(dir, 'skip.json'), '{}');
    const single = write('single.md', '# title\n');
    const source = textFileDocuments([dir, single]);
    const expected = [
      { id: 'a.txt', text: 'a\r\n' },
      { id: 'b/z.txt', text: 'bz' },
      { id: 'c.TXT', text: 'c' },
      { id: 'single.md', text: '# title\n' },
    ];
    expect(await collect(source)).toEqual(expected);
    expect(await collect(source)).toEqual(expected);
    expect(source.description).toContain(dir);
    expect(await collect(textFileDocuments(dir, { extensions: ['.json'] }))).toEqual([{ id: 'skip.json', text: '{}' }]);
  });

  it('a missing path is named', async () => {
    const e = await sourceError(textFileDocuments(join(root, 'nope')));
    expect(e.file).toBe(join(root, 'nope'));
    expect(e.message).toMatch(/cannot read .*nope/);
  });
});

describe('JSONL', () => {
  it('one document per non-blank line; ids from the id field or <file>:<line>', async () => {
    const file = write('a.jsonl', '{"id": "x", "text": "one"}\n\n{"text": "two\\nlines", "id": 5}\r\n{"text": ""}\n');
    expect(await collect(jsonlDocuments(file))).toEqual([
      { id: 'x', text: 'one' },
      { id: '5', text: 'two\nlines' },
      { id: 'a.jsonl:4', text: '' },
    ]);
    const other = write('b.jsonl', '{"content": "c", "key": "k1"}\n');
    expect(await collect(jsonlDocuments([file, other], { textField: 'content', idField: 'key' })).catch((e) => e.message)).toMatch(
      /a\.jsonl:1: no field "content" \(fields: "id", "text"\); choose the text field with --text-field/,
    );
    expect(await collect(jsonlDocuments(other, { textField: 'content', idField: 'key' }))).toEqual([{ id: 'k1', text: 'c' }]);
  });

  it('malformed lines are named by file and line', async () => {
    const bad = write('bad.jsonl', '{"text": "ok"}\n{"text": "unterminated}\n');
    let e = await sourceError(jsonlDocuments(bad));
    expect([e.file, e.line]).toEqual([bad, 2]);
    expect(e.message).toMatch(/bad\.jsonl:2: invalid JSON/);
    e = await sourceError(jsonlDocuments(write('arr.jsonl', '["text"]\n')));
    expect(e.message).toMatch(/arr\.jsonl:1: expected a JSON object per line, found an array/);
    e = await sourceError(jsonlDocuments(write('num.jsonl', '{"text": "a"}\n\n{"text": 3}\n')));
    expect(e.line).toBe(3);
    expect(e.message).toMatch(/num\.jsonl:3: "text" is number, not a string/);
    e = await sourceError(jsonlDocuments(join(root, 'absent.jsonl')));
    expect(e.message).toMatch(/cannot read .*absent\.jsonl/);
  });
});

describe('chat JSONL', () => {
  it('yields conversations; malformed messages are named by file, line and index', async () => {
    const file = write('chat.jsonl', JSON.stringify({ id: 'c', messages: [{ role: 'user', content: 'hi' }, { role: 'assistant', content: 'yo', name: 'bot' }] }) + '\n');
    expect(await collect(chatJsonlDocuments(file))).toEqual([
      { id: 'c', messages: [{ role: 'user', content: 'hi' }, { role: 'assistant', content: 'yo', name: 'bot' }] },
    ]);
    let e = await sourceError(chatJsonlDocuments(write('c1.jsonl', '{"text": "x"}\n')));
    expect(e.message).toMatch(/c1\.jsonl:1: no field "messages" \(fields: "text"\)/);
    e = await sourceError(chatJsonlDocuments(write('c2.jsonl', '{"messages": [{"role": "user", "content": "a"}]}\n{"messages": [{"role": "user"}]}\n')));
    expect(e.message).toMatch(/c2\.jsonl:2: messages\[0\] is \{"role":"user"\}, expected \{ "role": string, "content": string \}/);
    e = await sourceError(chatJsonlDocuments(write('c3.jsonl', '{"messages": []}\n')));
    expect(e.message).toMatch(/c3\.jsonl:1: "messages" is not a non-empty array/);
    e = await sourceError(chatJsonlDocuments(write('c4.jsonl', '{"conv": [{"role": "user", "content": "a"}]}\n{"conv": 1}\n'), { messagesField: 'conv' }));
    expect(e.line).toBe(2);
  });
});
