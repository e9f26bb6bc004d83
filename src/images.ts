// Image reference checks shared by the agent container and sidecars.

/** Why an image reference is not pinned, if it is not. */
export function imageProblems(image: string): string[] {
  if (/@sha256:[0-9a-f]{64}$/.test(image)) return [];
  const lastSlash = image.lastIndexOf('/');
  const colon = image.indexOf(':', lastSlash + 1);
  if (colon < 0) return [`'${image}' has no tag or digest`];
  const tag = image.slice(colon + 1);
  if (tag === 'latest') return [`'${image}' uses the mutable tag 'latest'`];
  if (!/^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/.test(tag)) return [`'${image}' has an invalid tag '${tag}'`];
  return [];
}
