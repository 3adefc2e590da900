-- Argo CD health of a ModelFleet DriftPolicy (Lua 5.1, as Argo CD runs it). Drift itself is the model's concern
-- (its MLModel shows Drifted); the policy is unhealthy when it cannot do its job.
local hs = {}
if obj.status == nil or obj.status.conditions == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the ModelFleet operator"
  return hs
end
if obj.metadata.generation ~= nil and (obj.status.observedGeneration == nil or obj.status.observedGeneration < obj.metadata.generation) then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to observe generation " .. obj.metadata.generation
  return hs
end
local c = {}
for _, cond in ipairs(obj.status.conditions) do c[cond.type] = cond end
local evaluated, budget, drift = c["Evaluated"], c["BudgetExhausted"], c["DriftDetected"]
if c["Ready"] ~= nil and c["Ready"].reason == "InvalidSpec" then
  hs.status = "Degraded"
  hs.message = c["Ready"].message
  return hs
end
if evaluated == nil or evaluated.reason == "NotEvaluatedYet" then
  hs.status = "Progressing"
  hs.message = "Not evaluated yet"
  return hs
end
if evaluated.status ~= "True" then
  hs.status = "Degraded"
  hs.message = evaluated.reason .. ": " .. (evaluated.message or "")
  return hs
end
if budget ~= nil and budget.status == "True" then
  hs.status = "Degraded"
  hs.message = "Retraining budget exhausted: " .. (budget.message or "")
  return hs
end
hs.status = "Healthy"
if drift ~= nil and drift.status == "True" then
  hs.message = "Drift detected: " .. (drift.message or "")
else
  hs.message = (drift ~= nil and drift.message) or "Evaluated"
end
return hs
