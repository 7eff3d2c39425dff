// The synthetic DICOM writer moved to src/dicom/synthetic.ts (bench ships it); tests keep this path.
export * from '../../src/dicom/synthetic.js';
