// The master: Spark master + the sqlembed service on 8888 (external HTTPS ingress; TLS terminates
// at the Container Apps edge), Spark's 7077/8080 and online dispatch's 7079 on internal TCP port mappings. Exactly one replica.
param name string
param location string
param tags object = {}
param environmentId string
param storageName string
param identityId string
param registryServer string
param apiKeySecretUri string
param databasesSecretUri string
@description('The SQLEMBED_DATABASES name whose sqlembed.jobs table keeps the job records (SQL Server survives a master restart on a new replica; SQLite on the Azure Files share would not: its locking is unreliable over SMB)')
param jobStoreDatabase string = 'app'
@description('GPU workers to ask for while bulk jobs are pending (the worker app caps it too)')
param maxGpuWorkers int = 2
param image string = 'mcr.microsoft.com/azuredocs/containerapps-helloworld:latest'

resource app 'Microsoft.App/containerApps@2024-03-01' = {
  name: name
  location: location
  tags: union(tags, { 'azd-service-name': 'master' })
  identity: { type: 'UserAssigned', userAssignedIdentities: { '${identityId}': {} } }
  properties: {
    environmentId: environmentId
    workloadProfileName: 'Consumption'
    configuration: {
      activeRevisionsMode: 'Single'
      ingress: {
        external: true
        targetPort: 8888
        transport: 'http'
        allowInsecure: false
        additionalPortMappings: [
          { external: false, targetPort: 7077, exposedPort: 7077 }
          // Executor tasks connect back here for online batches (SQLEMBED_PLACEMENT=auto).
          { external: false, targetPort: 7079, exposedPort: 7079 }
          // Bulk tasks report progress per chunk here.
          { external: false, targetPort: 7080, exposedPort: 7080 }
          { external: false, targetPort: 8080, exposedPort: 8080 }
        ]
      }
      registries: [ { server: registryServer, identity: identityId } ]
      secrets: [
        { name: 'api-key', keyVaultUrl: apiKeySecretUri, identity: identityId }
        { name: 'databases', keyVaultUrl: databasesSecretUri, identity: identityId }
      ]
    }
    template: {
      containers: [
        {
          name: 'master'
          image: image
          resources: { cpu: json('4.0'), memory: '8Gi' }
          env: [
            { name: 'APP_MODE', value: 'trigger' }
            { name: 'SQLEMBED_API_KEYS', secretRef: 'api-key' }
            { name: 'SQLEMBED_DATABASES', secretRef: 'databases' }
            { name: 'SQLEMBED_MODEL_DIR', value: '/data/models' }
            // Job records live in SQL Server (one source of truth, read by T-SQL too); the local
            // state directory holds nothing that must survive a restart.
            { name: 'SQLEMBED_JOB_STORE', value: 'db:${jobStoreDatabase}' }
            { name: 'SQLEMBED_STATE_DIR', value: '/tmp/sqlembed-state' }
            { name: 'SQLEMBED_PROGRESS_PORT', value: '7080' }
            { name: 'SQLEMBED_SPARK_MASTER', value: 'spark://127.0.0.1:7077' }
            { name: 'SQLEMBED_SPARK_GPU', value: 'true' }
            { name: 'SQLEMBED_SCALE_MAX_WORKERS', value: string(maxGpuWorkers) }
            { name: 'SQLEMBED_PLACEMENT', value: 'auto' }
            { name: 'SQLEMBED_DISPATCH_HOST', value: name }
            // One online task and one bulk task share each worker's A100.
            { name: 'SQLEMBED_SPARK_TASK_GPU_AMOUNT', value: '0.5' }
          ]
          volumeMounts: [ { volumeName: 'data', mountPath: '/data' } ]
          probes: [
            { type: 'Liveness', httpGet: { path: '/healthz', port: 8888 }, periodSeconds: 30 }
            { type: 'Readiness', httpGet: { path: '/readyz', port: 8888 }, periodSeconds: 10, initialDelaySeconds: 10 }
          ]
        }
      ]
      initContainers: [
        {
          // Models are built onto the share before the service starts, never on the request path.
          name: 'model-build'
          image: image
          command: [ 'sqlembed', 'model', 'build' ]
          resources: { cpu: json('4.0'), memory: '8Gi' }
          env: [ { name: 'SQLEMBED_MODEL_DIR', value: '/data/models' } ]
          volumeMounts: [ { volumeName: 'data', mountPath: '/data' } ]
        }
      ]
      volumes: [ { name: 'data', storageType: 'AzureFile', storageName: storageName } ]
      scale: { minReplicas: 1, maxReplicas: 1 }
    }
  }
}

output name string = app.name
output fqdn string = app.properties.configuration.ingress.fqdn
