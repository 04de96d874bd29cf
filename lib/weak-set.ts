// The objects a model made, held weakly: dispose() can cascade to those still alive, while one a
// user dropped without disposing can be garbage-collected (its native finalizer frees it).
export class WeakObjectSet<T extends object> {
  readonly #refs = new Set<WeakRef<T>>()
  readonly #byObject = new WeakMap<T, WeakRef<T>>()
  readonly #registry = new FinalizationRegistry<WeakRef<T>>((ref) => this.#refs.delete(ref))

  add(value: T): void {
    const ref = new WeakRef(value)
    this.#refs.add(ref)
    this.#byObject.set(value, ref)
    this.#registry.register(value, ref, ref)
  }

  delete(value: T): void {
    const ref = this.#byObject.get(value)
    if (!ref) return
    this.#refs.delete(ref)
    this.#byObject.delete(value)
    this.#registry.unregister(ref)
  }

  /** The members still alive. */
  values(): T[] {
    const out: T[] = []
    for (const ref of this.#refs) {
      const v = ref.deref()
      if (v) out.push(v)
    }
    return out
  }
}
