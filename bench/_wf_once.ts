import { benchWorkflow } from './runtime';
benchWorkflow().then((r) => { console.table(r); console.log(JSON.stringify(r)); process.exit(0); }, (e) => { console.error(e); process.exit(1); });
