// The layers of src/ (drawn in docs/HOW-IT-WORKS.md), lowest first. A file may import from its own folder
// and from the folders before it in this list, never from one after it; and no import circles anywhere.
// Checked by test/unit/layers.test.ts (part of `npm test`); `npx depcruise src` prints the same findings.
// A new folder under src/ must be added here, where its imports put it.
// One per line, so that adding a folder is a one-line change.
// prettier-ignore
const LAYERS = [
  'pdu',
  'values',
  'events',
  'experiment',
  'dimse',
  'dicom',
  'transform',
  'capture',
  'record',
  'config',
  'proxy',
  'control',
  'peers',
  'analysis',
  'report',
  'bench',
  'cli',
];

const upward = LAYERS.slice(0, -1).map((layer, i) => ({
  name: `layer-${layer}`,
  comment: `src/${layer}/ stands below ${LAYERS.slice(i + 1).join(', ')}: it may not import from them (docs/HOW-IT-WORKS.md)`,
  severity: 'error',
  from: { path: `^src/${layer}/` },
  to: { path: `^src/(${LAYERS.slice(i + 1).join('|')})/` },
}));

/** @type {import('dependency-cruiser').IConfiguration} */
module.exports = {
  forbidden: [
    ...upward,
    {
      name: 'no-circular',
      comment: 'An import circle: the modules on it cannot be read (or loaded) one before the other.',
      severity: 'error',
      from: { path: '^src/' },
      to: { circular: true },
    },
    {
      name: 'capture-encoding-pure',
      comment: 'src/capture/encoding/ is the pure pcapng/TCP encoder: it imports only its own folder and src/pdu/ (the recorder, the file and the tap beside it do the I/O)',
      severity: 'error',
      from: { path: '^src/capture/encoding/' },
      to: { path: '^src/', pathNot: '^src/(capture/encoding|pdu)/' },
    },
    {
      name: 'capture-encoding-no-io',
      comment: "src/capture/encoding/ does no I/O: of node's modules it may use net (address parsing) and buffer only",
      severity: 'error',
      from: { path: '^src/capture/encoding/' },
      to: { dependencyTypes: ['core'], pathNot: '^(node:)?(net|buffer)$' },
    },
    {
      name: 'unknown-layer',
      comment: `A file under src/ outside the known layers (${LAYERS.join(', ')}): add its folder to LAYERS in .dependency-cruiser.cjs and to docs/HOW-IT-WORKS.md`,
      severity: 'error',
      from: { path: '^src/', pathNot: `^src/(${LAYERS.join('|')})/` },
      to: {},
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    exclude: { path: '^(dist|node_modules)/' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    enhancedResolveOptions: { extensions: ['.ts', '.js'] },
  },
};
