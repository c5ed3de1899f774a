/**
 * `build` runs on the first call and its value is returned ever after; a build that throws is
 * not remembered, so the next call tries again (a Lambda container whose first invocation met a
 * transient fault must not stay broken until it is recycled).
 */
export function once<T>(build: () => T): () => T {
  const cell: { built?: { value: T } } = {};
  return () => {
    cell.built ??= { value: build() };
    return cell.built.value;
  };
}
