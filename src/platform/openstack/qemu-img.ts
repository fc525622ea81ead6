import { execFile } from 'node:child_process';
import { stat } from 'node:fs/promises';
import { convertStaged } from '../disk-io/direct-io.js';

/** qemu-img's longest run here: a conversion of a whole disk. */
const QEMU_IMG_TIMEOUT_MS = 30 * 60_000;

/**
 * qemu-img as a subprocess (killed on cancel through `signal`); rejects naming `what` with the
 * end of qemu-img's stderr, paths masked (a fault message never carries a local path).
 */
export function qemuImg(args: string[], what: string, signal?: AbortSignal): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile('qemu-img', args, { encoding: 'utf8', signal, timeout: QEMU_IMG_TIMEOUT_MS, env: { ...process.env, LC_ALL: 'C' } }, (err, stdout, stderr) => {
      if (err) reject(new Error(`qemu-img ${args[0]} of ${what} failed: ${(stderr || err.message).replace(/\/[^\s'"]+/g, '<path>').trim().slice(-300)}`));
      else resolve(stdout);
    });
  });
}

/**
 * A restored disk file whose data (allocated blocks) is below this share of its size goes to
 * Glance as qcow2: holes are then neither uploaded nor downloaded again by Cinder or Nova (a
 * 1 GiB volume holding 3 MiB, on the loopback stack: 37 s raw, 8 s qcow2 from upload to
 * `available`). A denser one goes raw: a conversion would only copy it once more locally.
 */
const QCOW2_BELOW_SHARE = 0.75;

/** Whether a disk of `size` bytes of which `dataBytes` hold data goes to Glance as qcow2 (see QCOW2_BELOW_SHARE). */
export function uploadsAsQcow2(dataBytes: number, size: number): boolean {
  return size > 0 && dataBytes < size * QCOW2_BELOW_SHARE;
}

/** The file to upload for a restored raw disk and its Glance disk_format: a qcow2 copy beside it when it is sparse enough. */
export async function uploadableImage(rawFile: string, size: number, signal?: AbortSignal): Promise<{ file: string; format: 'raw' | 'qcow2'; size: number }> {
  const allocated = (await stat(rawFile)).blocks * 512;
  if (!uploadsAsQcow2(allocated, size)) return { file: rawFile, format: 'raw', size };
  const qcow2 = `${rawFile}.qcow2`;
  await convertStaged((args) => qemuImg(args, 'a restored disk', signal), ['-f', 'raw', '-O', 'qcow2', rawFile, qcow2]);
  return { file: qcow2, format: 'qcow2', size: (await stat(qcow2)).size };
}
