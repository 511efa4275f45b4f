/** snapctl view: the read-only sibling of prepare (one file per command; the code is shared). */
export { viewCommand as command } from './prepare';
