import { majorMinorOf } from '@flocker/storage-drivers';
import { ext4SizeFromSuperblock } from './HostOps';

describe('host helpers', () => {
  it('reads an ext4 size from its superblock', () => {
    const sb = Buffer.alloc(1024);
    sb.writeUInt16LE(0xef53, 0x38);
    sb.writeUInt32LE(2, 0x18); // 4096-byte blocks
    sb.writeUInt32LE(16384, 0x04);
    expect(ext4SizeFromSuperblock(sb)).toBe(64 * 1024 * 1024);
    sb.writeUInt32LE(0x80, 0x60); // 64bit: the high word counts
    sb.writeUInt32LE(1, 0x150);
    expect(ext4SizeFromSuperblock(sb)).toBe((2 ** 32 + 16384) * 4096);
  });
  it('says "not ext4" without the magic number', () => {
    expect(ext4SizeFromSuperblock(Buffer.alloc(1024))).toBeNull();
  });
  it('splits a dev_t like glibc', () => {
    expect(majorMinorOf(0x0703n)).toBe('7:3');
    expect(majorMinorOf((259n << 8n) | 0x01n)).toBe('259:1');
    expect(majorMinorOf(0x100700n)).toBe('7:256'); // minor bits above 8 live at 20+
  });
});
