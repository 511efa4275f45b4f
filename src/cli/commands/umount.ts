/** snapctl umount DIR: the undo of snapctl mount (one file per command; the code lives in ./mount). */
export { umountCommand as command } from './mount';
