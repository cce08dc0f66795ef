/**
 * Review TN F1 (session 21): a volume named like another volume's dataset id made `flocker volumes destroy <id>`
 * ambiguous; `flocker volumes create`, the UI and the Docker plugin refuse such a name for a new volume. The control
 * service's compose makes every volume a deployment names that does not exist, so flocker-deploy refuses, before it
 * applies anything, a deployment that would make a new volume with a UUID-shaped name; a deployment using an existing
 * volume of such a name goes on as before.
 */
import { type ComposeRequest, type DatasetConfiguration, type FlockerClient, parseApplicationFile } from '@flocker/api';
import { EXIT } from '../errors';
import { containerConfig } from '../testing/containers';
import { runDeploy } from '../testing/deploy';
import { deployPlan, formatPlan } from './plan';

const A = 'aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa';
const ID_NAME = 'c6fcd4ab-6141-509f-95da-52a54a496abe';
const nodes = [{ uuid: A, host: '10.0.0.1' }];
const DEPLOY = 'version: 1\nnodes:\n  10.0.0.1: [db]\n';
const composeFile = (volume: string) => `services:\n  db:\n    image: busybox\n    volumes: ["${volume}:/data"]\n`;
const live = (name: string, deleted = false): DatasetConfiguration => ({
  dataset_id: '11111111-1111-4111-8111-111111111111',
  primary: A,
  metadata: { name },
  deleted,
});

function apps(doc: unknown) {
  const parsed = parseApplicationFile(doc);
  if (!parsed.ok) throw new Error(JSON.stringify(parsed.issues));
  return parsed.value;
}

describe('deployPlan: a new volume with a UUID-shaped name', () => {
  const named = (volume: string) => apps({ db: { image: 'busybox', volumes: [`${volume}:/data`] } });
  const placement = new Map([['db', '10.0.0.1']]);

  test.each([ID_NAME, ID_NAME.toUpperCase()])('compose name:/path %p, no volume of that name: flagged', (name) => {
    const plan = deployPlan(named(name), placement, [], nodes, []);
    expect(plan.idShapedVolumes).toEqual([{ application: 'db', volume: name, namedAfterApplication: false }]);
    expect(formatPlan(plan, 'd.yml')).toEqual([
      'plan: 1 to add, 0 to change, 0 to remove, 0 unchanged',
      '  + db: busybox on 10.0.0.1',
      `  ! db: the new volume ${name} is shaped like a volume id, which a new volume's name cannot be (commands take a volume's name or its id): choose another name; the deploy will be refused`,
    ]);
  });

  test("an application's own volume, named after a UUID-shaped application name: flagged, saying so", () => {
    const own = apps({
      version: 1,
      applications: { [ID_NAME]: { image: 'busybox', volume: { mountpoint: '/data' } } },
    });
    const plan = deployPlan(own, new Map([[ID_NAME, '10.0.0.1']]), [], nodes, []);
    expect(plan.idShapedVolumes).toEqual([{ application: ID_NAME, volume: ID_NAME, namedAfterApplication: true }]);
    expect(formatPlan(plan, 'd.yml')[2]).toMatch(
      new RegExp(
        `^  ! ${ID_NAME}: the new volume ${ID_NAME} \\(named after the application\\) is shaped like a volume id`,
      ),
    );
  });

  test('an existing live volume of that name: not flagged (it is used, not made); a deleted one does not count', () => {
    expect(deployPlan(named(ID_NAME), placement, [], nodes, [live(ID_NAME)]).idShapedVolumes).toEqual([]);
    expect(deployPlan(named(ID_NAME), placement, [], nodes, [live(ID_NAME, true)]).idShapedVolumes).toHaveLength(1);
  });

  test('names that only look a little like ids, and applications without a volume: not flagged', () => {
    for (const name of [`${ID_NAME}-2`, ID_NAME.slice(0, 8), ID_NAME.replace(/-/g, '')])
      expect(deployPlan(named(name), placement, [], nodes, []).idShapedVolumes).toEqual([]);
    const bare = apps({ version: 1, applications: { [ID_NAME]: { image: 'busybox' } } });
    expect(deployPlan(bare, new Map([[ID_NAME, '10.0.0.1']]), [], nodes, []).idShapedVolumes).toEqual([]);
  });
});

describe('flocker-deploy and a new volume with a UUID-shaped name', () => {
  function client(datasets: DatasetConfiguration[], composed: ComposeRequest[]): FlockerClient {
    return {
      listContainers: async () => [],
      listNodes: async () => nodes,
      listDatasets: async () => datasets,
      listContainerState: async () => [],
      compose: async (req: ComposeRequest) => {
        composed.push(req);
        return [containerConfig('db', A, 'busybox')];
      },
    } as unknown as FlockerClient;
  }

  test.each([[[]], [['--dry-run']]])('refused with exit 2 and nothing applied (args %p)', async (args) => {
    const composed: ComposeRequest[] = [];
    const r = await runDeploy(args, client([], composed), DEPLOY, composeFile(ID_NAME));
    expect(r.code).toBe(EXIT.USAGE);
    expect(composed).toEqual([]);
    expect(r.out).toContainEqual(expect.stringMatching(new RegExp(`^  ! db: the new volume ${ID_NAME} is shaped`)));
    expect(r.err.join('\n')).toMatch(
      new RegExp(
        `a\\.yml would make a new volume named like a volume id \\(${ID_NAME}\\): choose another name; nothing was applied`,
      ),
    );
  });

  test('an existing volume of that name: deployed as before', async () => {
    const composed: ComposeRequest[] = [];
    const r = await runDeploy([], client([live(ID_NAME)], composed), DEPLOY, composeFile(ID_NAME));
    expect({ code: r.code, err: r.err }).toEqual({ code: 0, err: [] });
    expect(composed).toHaveLength(1);
  });
});
