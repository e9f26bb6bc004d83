import { MemoryJobService } from '../../src/jobs/memory-store';
import { jobStoreContract, parse } from './store-contract';

describe('MemoryJobService', () => {
  jobStoreContract(async (execute) => new MemoryJobService({ parse, execute }), false);
});
