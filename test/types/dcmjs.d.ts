// The part of dcmjs the tests use (dcmjs ships no type declarations): its implicit/explicit VR reader, as
// an independent oracle for the command set decoder.
declare module 'dcmjs' {
  interface DcmjsElement {
    vr: string;
    Value?: unknown[];
  }
  const dcmjs: {
    data: {
      DicomMessage: { _read(stream: unknown, transferSyntax: string, options: object): Record<string, DcmjsElement> };
      ReadBufferStream: new (buffer: ArrayBuffer) => unknown;
    };
  };
  export default dcmjs;
}
