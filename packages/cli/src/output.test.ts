import { outputFormat, renderList, structured, wantsJson, type ListSpec } from './output';

interface Row {
  id: string;
  name: string;
  extra: string;
}
const spec: ListSpec<Row> = {
  headers: ['NAME', 'ID'],
  cells: (r) => [r.name, r.id],
  wideHeaders: ['EXTRA'],
  wideCells: (r) => [r.extra],
  name: (r) => r.name,
  id: (r) => r.id,
};
const rows: Row[] = [
  { id: 'id-1', name: 'a', extra: 'x' },
  { id: 'id-2', name: 'bb', extra: 'y' },
];

describe('output formats (-o, -q)', () => {
  it('--json is -o json; an unknown or absent -o is the table', () => {
    expect(outputFormat({ json: true, output: 'yaml' })).toBe('json');
    expect(outputFormat({ json: false, output: 'yaml' })).toBe('yaml');
    expect(outputFormat({ json: false })).toBe('table');
    expect(outputFormat({ json: false, output: 'xml' })).toBe('table');
  });
  it('table, wide, name, -q', () => {
    expect(renderList({ json: false }, rows, spec)).toBe('NAME  ID\na     id-1\nbb    id-2');
    expect(renderList({ json: false, output: 'wide' }, rows, spec)).toBe(
      'NAME  ID    EXTRA\na     id-1  x\nbb    id-2  y',
    );
    expect(renderList({ json: false, output: 'name' }, rows, spec)).toBe('a\nbb');
    expect(renderList({ json: false, output: 'json', quiet: true }, rows, spec)).toBe('id-1\nid-2');
  });
  it('json and yaml hold every field', () => {
    expect(JSON.parse(renderList({ json: false, output: 'json' }, rows, spec))).toEqual(rows);
    expect(renderList({ json: false, output: 'yaml' }, rows, spec)).toBe(
      '- id: id-1\n  name: a\n  extra: x\n- id: id-2\n  name: bb\n  extra: y',
    );
    expect(structured('table', rows)).toBeUndefined();
  });
  it('wantsJson: --json, -o json, --output=json, -ojson', () => {
    expect(wantsJson(['volumes', 'list', '--json'])).toBe(true);
    expect(wantsJson(['volumes', 'list', '-o', 'json'])).toBe(true);
    expect(wantsJson(['--output=json'])).toBe(true);
    expect(wantsJson(['-ojson'])).toBe(true);
    expect(wantsJson(['-o', 'yaml'])).toBe(false);
    expect(wantsJson(['volumes', 'create', 'json'])).toBe(false);
  });
});
