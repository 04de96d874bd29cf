// The CPU side of speed: how many threads (budget.ts) and how they wait for each other (wait.ts).
export { type CpuBudget, cpuBudget, defaultThreads, systemCpuBudget, usableCpus } from './budget'
export { AUTO_SPIN_COUNT, type CpuWait, type CpuWaitInfo, beforeAddonLoad, cpuWaitInfo, setCpuWait } from './wait'
