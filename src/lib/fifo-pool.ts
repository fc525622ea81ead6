/**
 * A pool of items (slot numbers, permits) shared by async tasks: `take` resolves with a free
 * item, at once when there is one, else when one is given back, takers served in the order they
 * came; `give` returns an item, straight to the longest-waiting taker if any. Items are never
 * created or lost here: what is given back is what a taker gets.
 */
export class FifoPool<T> {
  private readonly waiters: ((item: T) => void)[] = [];

  constructor(private readonly free: T[]) {}

  take(): Promise<T> {
    if (this.free.length > 0) return Promise.resolve(this.free.pop()!);
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  give(item: T): void {
    const next = this.waiters.shift();
    if (next) next(item);
    else this.free.push(item);
  }
}
