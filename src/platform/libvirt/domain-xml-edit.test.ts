import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { withoutBackingStores } from './domain-xml-edit.js';
import { parseDomainXml } from './domain-xml.js';

const XML = `<domain type='kvm'>
  <name>a&amp;b</name>
  <uuid>0b7e1c6a-3f59-4c55-9a3f-4f5c2b7f1d10</uuid>
  <!-- kept -->
  <description>  "quoted" &lt;text&gt; </description>
  <devices>
    <disk type='file' device='disk'>
      <driver name='qemu' type='qcow2'/>
      <source file='/img/vda.qcow2'/>
      <backingStore type='file'>
        <format type='qcow2'/>
        <source file='/img/base.qcow2'/>
        <backingStore/>
      </backingStore>
      <target dev='vda' bus='virtio'/>
    </disk>
    <disk type='file' device='disk'>
      <driver name='qemu' type='qcow2'/>
      <source file='/img/vdb.qcow2'/>
      <backingStore type='file'><format type='qcow2'/><source file='/img/base-b.qcow2'/></backingStore>
      <target dev='vdb' bus='virtio'/>
    </disk>
    <graphics type='vnc' passwd='p&quot;w'/>
  </devices>
</domain>`;

describe('withoutBackingStores', () => {
  test('declares the named disks standalone and leaves everything else as it was', () => {
    const out = withoutBackingStores(XML, ['vda']);
    assert.ok(out);
    assert.doesNotMatch(out, /base\.qcow2/);
    assert.match(out, /<source file="\/img\/vda\.qcow2"\/>\s*<backingStore\/>\s*<target dev="vda"/);
    assert.match(out, /base-b\.qcow2/, 'vdb was not asked for: its chain stays');
    assert.match(out, /<!-- kept -->/);
    assert.match(out, /<description> {2}&quot;quoted&quot; &lt;text&gt; <\/description>/, 'text with its spaces, entities encoded again');
    assert.match(out, /passwd="p&quot;w"/);
    const dom = parseDomainXml(out);
    assert.equal(dom.name, 'a&b');
    assert.deepEqual(dom.disks.map((d) => d.source), ['/img/vda.qcow2', '/img/vdb.qcow2']);
  });

  test('null when no named disk has a backing chain (nothing to define)', () => {
    assert.equal(withoutBackingStores(XML, ['vdc']), null);
    const once = withoutBackingStores(XML, ['vda', 'vdb'])!;
    assert.equal(withoutBackingStores(once, ['vda', 'vdb']), null, 'an empty <backingStore/> is already standalone');
  });
});
