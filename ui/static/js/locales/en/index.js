// The en catalogue: one file per area of the board, merged.
import common from './common.js';
import overview from './overview.js';
import patient from './patient.js';
import queue from './queue.js';
import site from './site.js';

export default { ...common, ...site, ...queue, ...patient, ...overview };
