// AuditPipeline module
