// malloc_info()'s XML as the soak reads it (test/soak/malloc.ts): the totals after the last </heap>, not
// the first arena's lines, which carry the same tags.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseMallocInfo } from '../soak/malloc.js';

// Shaped like glibc 2.36's output (cut down): two arenas, then the totals of all of them.
const XML = `<malloc version="1">
<heap nr="0">
<sizes>
  <size from="65553" to="65713" total="65454854" count="998"/>
</sizes>
<total type="fast" count="0" size="0"/>
<total type="rest" count="1852" size="65874427"/>
<system type="current" size="134184960"/>
<system type="max" size="134184960"/>
<aspace type="total" size="134184960"/>
<aspace type="mprotect" size="134184960"/>
</heap>
<heap nr="1">
<sizes>
</sizes>
<total type="fast" count="6" size="272"/>
<total type="rest" count="13" size="645080"/>
<system type="current" size="135168"/>
<system type="max" size="135168"/>
<aspace type="total" size="135168"/>
<aspace type="mprotect" size="135168"/>
<aspace type="subheaps" size="1"/>
</heap>
<total type="fast" count="6" size="272"/>
<total type="rest" count="1865" size="66519507"/>
<total type="mmap" count="1" size="135168"/>
<system type="current" size="134320128"/>
<system type="max" size="134320128"/>
<aspace type="total" size="134320128"/>
<aspace type="mprotect" size="134320128"/>
</malloc>
`;

test('parseMallocInfo: free = fast + rest of the totals, system current, mmapped, arenas', () => {
  assert.deepEqual(parseMallocInfo(XML), { freeBytes: 272 + 66519507, systemBytes: 134320128, mmapBytes: 135168, arenas: 2 });
});

test('parseMallocInfo: a truncated document is an error, not zeros', () => {
  assert.throws(() => parseMallocInfo(XML.slice(0, XML.indexOf('<total type="mmap"'))), /malloc_info: no </);
});
