// GPU workers: one A100 each, scaling 0..N. They take no HTTP traffic, so an HTTP scale rule cannot
// wake them: a KEDA metrics-api rule polls the master's GET /v1/scale (internal) and reads
// workers_wanted, which the master derives from its job backlog (docs/deploy.md explains why KEDA
// rather than ARM calls from the master).
param name string
param location string
param tags object = {}
param environmentId string
param storageName string
param identityId string
param registryServer string
param masterName string
param apiKeySecretUri string
@minValue(1)
param maxReplicas int = 2
param image string = 'mcr.microsoft.com/azuredocs/containerapps-helloworld:latest'

resource app 'Microsoft.App/containerApps@2024-03-01' = {
  name: name
  location: location
  tags: union(tags, { 'azd-service-name': 'worker-gpu' })
  identity: { type: 'UserAssigned', userAssignedIdentities: { '${identityId}': {} } }
  properties: {
    environmentId: environmentId
    workloadProfileName: 'gpu-a100'
    configuration: {
      activeRevisionsMode: 'Single'
      registries: [ { server: registryServer, identity: identityId } ]
      secrets: [ { name: 'api-key', keyVaultUrl: apiKeySecretUri, identity: identityId } ]
    }
    template: {
      containers: [
        {
          name: 'worker'
          image: image
          resources: { cpu: json('24.0'), memory: '220Gi' }
          env: [
            { name: 'SPARK_MASTER_URL', value: 'spark://${masterName}:7077' }
            { name: 'SQLEMBED_MODEL_DIR', value: '/data/models' }
            { name: 'SQLEMBED_STATE_DIR', value: '/data/state' }
          ]
          volumeMounts: [ { volumeName: 'data', mountPath: '/data' } ]
        }
      ]
      volumes: [ { name: 'data', storageType: 'AzureFile', storageName: storageName } ]
      scale: {
        minReplicas: 0
        maxReplicas: maxReplicas
        rules: [
          {
            name: 'job-backlog'
            custom: {
              type: 'metrics-api'
              metadata: {
                url: 'http://${masterName}/v1/scale'
                valueLocation: 'workers_wanted'
                targetValue: '1'
                authMode: 'apiKey'
                method: 'header'
                keyParamName: 'api-key'
              }
              auth: [ { secretRef: 'api-key', triggerParameter: 'apiKey' } ]
            }
          }
        ]
      }
    }
  }
}

output name string = app.name
